"""Alipay open-platform adapter (RSA2), plus the wire-format functions the built-in
gateway emulator shares with it.

Signed text is always the exact text on the wire: request params sorted and joined raw,
response nodes cut verbatim out of the body, notifications verified over their decoded
form fields. An unsigned answer can refuse a request but never tells us a trade state.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import requests

from app.money import MoneyFormatError, format_yuan, parse_yuan
from app.payments.channels import alipay_bill
from app.payments.channels.base import (
    BillLine,
    ChannelRefused,
    ChargeIntent,
    ChargeRequest,
    Notification,
    NotificationRejected,
    NotifyAnswer,
    RefundRequest,
    RefundResult,
    RefundState,
    SignatureError,
    TradeState,
    TradeStatus,
    UnknownResult,
    in_utc_range,
    is_identifier,
)
from app.payments.channels.crypto import (
    RsaKey,
    load_private_key,
    load_public_key,
    rsa2_sign,
    rsa2_verify,
)

log = logging.getLogger(__name__)

BEIJING = ZoneInfo("Asia/Shanghai")
ALIPAY_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
CODE_SUCCESS = "10000"
CODE_BUSY = "20000"
SUB_CODE_TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
# Alipay documents these sub codes as "retry": the outcome is not known.
_BUSY_SUB_CODES = frozenset({"ACQ.SYSTEM_ERROR"})
_TRADE_STATES = {
    "WAIT_BUYER_PAY": TradeState.PENDING,
    "TRADE_SUCCESS": TradeState.PAID,
    "TRADE_FINISHED": TradeState.PAID,
    "TRADE_CLOSED": TradeState.CLOSED,
}
_NOTIFY_REQUIRED = ("notify_id", "out_trade_no", "trade_no", "trade_status", "total_amount")
_NOTIFY_MAX_FIELDS = 200


@dataclass(frozen=True)
class AlipaySettings:
    app_id: str
    seller_id: str  # our merchant PID (2088…), checked on every notification
    app_private_key_pem: str = field(repr=False)
    alipay_public_key_pem: str = field(repr=False)
    gateway_url: str
    timeout_seconds: float = 10.0


# --- wire format, shared with the gateway emulator -------------------------------------


def response_key(method: str) -> str:
    """``alipay.trade.query`` -> ``alipay_trade_query_response``."""
    return method.replace(".", "_") + "_response"


def signing_content(params: Mapping[str, str], exclude: tuple[str, ...] = ("sign",)) -> str:
    """Alipay's text to sign: non-empty params, sorted by key, ``k=v`` joined by ``&``."""
    return "&".join(
        f"{key}={params[key]}" for key in sorted(params) if key not in exclude and params[key]
    )


def sign_params(params: Mapping[str, str], private_key: RsaKey) -> str:
    """The ``sign`` of a request: every non-empty param but ``sign`` (``sign_type`` included)."""
    return rsa2_sign(signing_content(params).encode("utf-8"), private_key)


def verify_params(
    params: Mapping[str, str],
    public_key: RsaKey,
    exclude: tuple[str, ...] = ("sign", "sign_type"),
) -> bool:
    """Check ``params["sign"]`` the way notifications are signed (without ``sign_type``)."""
    signature = params.get("sign")
    if not signature:
        return False
    return rsa2_verify(signing_content(params, exclude).encode("utf-8"), signature, public_key)


def _value_end(text: str, start: int) -> int:
    """Index just past the JSON value at ``start``; ``text`` is already known valid JSON."""
    depth, index, in_string = 0, start, False
    while True:
        char = text[index]
        if in_string:
            if char == "\\":
                index += 1  # the escaped character can be neither a quote nor a bracket
            elif char == '"':
                in_string = False
                if depth == 0:
                    return index + 1
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]" and depth > 0:
            depth -= 1
            if depth == 0:
                return index + 1
        elif depth == 0 and char in ",}] \t\r\n":
            return index  # the end of a number or literal
        index += 1


def _skip_space(text: str, index: int) -> int:
    while text[index] in " \t\r\n":
        index += 1
    return index


def _top_level_spans(body_text: str) -> dict[str, tuple[int, int]]:
    """Map each top-level key of a JSON object to the (start, end) of its raw value.

    Raises ValueError on text that is not a JSON object or repeats a top-level key.
    """
    if not isinstance(json.loads(body_text), dict):
        raise ValueError("response body is not a JSON object")
    spans: dict[str, tuple[int, int]] = {}
    index = _skip_space(body_text, _skip_space(body_text, 0) + 1)  # past "{"
    while body_text[index] != "}":
        key_end = _value_end(body_text, index)
        key = json.loads(body_text[index:key_end])
        value_start = _skip_space(body_text, _skip_space(body_text, key_end) + 1)  # past ":"
        value_end = _value_end(body_text, value_start)
        if key in spans:
            raise ValueError(f"repeated key {key!r} in response body")
        spans[key] = (value_start, value_end)
        index = _skip_space(body_text, value_end)
        if body_text[index] == ",":
            index = _skip_space(body_text, index + 1)
    return spans


def _sign_of(body_text: str, spans: Mapping[str, tuple[int, int]]) -> str | None:
    if "sign" not in spans:
        return None
    sign = json.loads(body_text[slice(*spans["sign"])])
    if sign is not None and not isinstance(sign, str):
        raise ValueError("sign is not a string")
    return sign or None


def extract_response_node(body_text: str, method: str) -> tuple[str, str | None]:
    """The raw text of ``<method>_response`` exactly as it appears in the body, and ``sign``.

    Alipay signs the node's bytes as sent, so the text is cut out, never re-serialized.
    Raises ValueError when the body is not a JSON object, lacks the node, or the node
    is not an object. An empty or absent ``sign`` is returned as None.
    """
    spans = _top_level_spans(body_text)
    key = response_key(method)
    if key not in spans:
        raise ValueError(f"no {key} in response body")
    node_text = body_text[slice(*spans[key])]
    if not node_text.startswith("{"):
        raise ValueError(f"{key} is not an object")
    return node_text, _sign_of(body_text, spans)


def signed_response_body(method: str, node: Mapping[str, Any], private_key: RsaKey) -> str:
    """A gateway's signed answer: ``{"<m>_response":<node>,"sign":"…"}``, compact JSON."""
    node_text = json.dumps(dict(node), ensure_ascii=False, separators=(",", ":"))
    sign = rsa2_sign(node_text.encode("utf-8"), private_key)
    return f'{{"{response_key(method)}":{node_text},"sign":{json.dumps(sign)}}}'


def parse_beijing_time(text: str) -> datetime:
    """``"2024-05-01 10:00:00"`` in Beijing time -> an aware datetime. ValueError if not,
    or if the instant has no UTC equivalent (year 1, early morning, say)."""
    return in_utc_range(datetime.strptime(text, ALIPAY_TIME_FORMAT).replace(tzinfo=BEIJING))


def format_beijing_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: cannot tell which instant it is")
    return moment.astimezone(BEIJING).strftime(ALIPAY_TIME_FORMAT)


# --- the channel ------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class AlipayChannel:
    """The PaymentChannel for Alipay face-to-face payment (QR code precreate)."""

    name = "alipay"
    notify_content_type = "application/x-www-form-urlencoded"

    def __init__(
        self,
        settings: AlipaySettings,
        session: requests.Session,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._clock = clock or _utc_now
        self._app_private_key = load_private_key(settings.app_private_key_pem)
        self._alipay_public_key = load_public_key(settings.alipay_public_key_pem)

    # -- requests --

    def precreate(self, charge: ChargeRequest) -> ChargeIntent:
        left = charge.expires_at - self._clock()
        if left <= timedelta(0):
            raise ValueError(f"charge {charge.out_trade_no} expired before precreate")
        # Rounded down so the QR code never outlives our own deadline.
        minutes = max(1, left // timedelta(minutes=1))
        node = self._call(
            "alipay.trade.precreate",
            {
                "out_trade_no": charge.out_trade_no,
                "total_amount": format_yuan(charge.amount_fen),
                "subject": charge.subject,
                "timeout_express": f"{minutes}m",
            },
            notify_url=charge.notify_url,
        )
        self._check_out_trade_no(node, charge.out_trade_no)
        qr_code = node.get("qr_code")
        if not isinstance(qr_code, str) or not qr_code:
            raise UnknownResult("alipay.trade.precreate: success without qr_code")
        return ChargeIntent(out_trade_no=charge.out_trade_no, qr_code=qr_code)

    def query(self, out_trade_no: str) -> TradeStatus:
        node = self._call("alipay.trade.query", {"out_trade_no": out_trade_no}, not_found_ok=True)
        if node.get("code") != CODE_SUCCESS:
            return TradeStatus(out_trade_no=out_trade_no, state=TradeState.NOT_FOUND)
        self._check_out_trade_no(node, out_trade_no)
        state = _TRADE_STATES.get(str(node.get("trade_status")))
        if state is None:
            raise UnknownResult(f"alipay.trade.query: unknown trade_status {node.get('trade_status')!r}")
        try:
            total = node.get("total_amount")
            amount_fen = parse_yuan(total) if total not in (None, "") else None
            send_pay_date = node.get("send_pay_date")
            paid_at = parse_beijing_time(send_pay_date) if send_pay_date else None
        except (MoneyFormatError, ValueError, TypeError) as exc:
            raise UnknownResult(f"alipay.trade.query: malformed field ({exc})") from None
        return TradeStatus(
            out_trade_no=out_trade_no,
            state=state,
            amount_fen=amount_fen,
            channel_trade_no=node.get("trade_no") or None,
            paid_at=paid_at,
        )

    def close(self, out_trade_no: str) -> TradeState:
        """CLOSED or NOT_FOUND. A paid trade is refused (ACQ.TRADE_STATUS_ERROR) as
        ChannelRefused, so the caller queries before deciding anything."""
        node = self._call("alipay.trade.close", {"out_trade_no": out_trade_no}, not_found_ok=True)
        return TradeState.CLOSED if node.get("code") == CODE_SUCCESS else TradeState.NOT_FOUND

    def refund(self, refund: RefundRequest) -> RefundResult:
        """``alipay.trade.refund``: synchronous; a 10000 answer means the money went back.

        Repeating an ``out_request_no`` answers the first refund again (fund_change "N"),
        so a retry after an unknown answer never refunds twice.
        """
        node = self._call(
            "alipay.trade.refund",
            {
                "out_trade_no": refund.out_trade_no,
                "refund_amount": format_yuan(refund.amount_fen),
                "out_request_no": refund.out_refund_no,
                "refund_reason": refund.reason[:256],
            },
        )
        self._check_out_trade_no(node, refund.out_trade_no)
        return RefundResult(
            out_refund_no=refund.out_refund_no,
            state=RefundState.SUCCEEDED,
            amount_fen=refund.amount_fen,
            channel_refund_no=node.get("trade_no") or None,
            refunded_at=self._beijing_or_none(node.get("gmt_refund_pay"), "alipay.trade.refund"),
        )

    def query_refund(self, out_trade_no: str, out_refund_no: str) -> RefundResult | None:
        """None when Alipay knows no such refund: its answer then carries no refund data."""
        node = self._call(
            "alipay.trade.fastpay.refund.query",
            {"out_trade_no": out_trade_no, "out_request_no": out_refund_no},
            not_found_ok=True,
        )
        if node.get("code") != CODE_SUCCESS or not node.get("refund_amount"):
            return None
        if node.get("refund_status") not in (None, "", "REFUND_SUCCESS"):
            return None
        if node.get("out_request_no") not in (None, out_refund_no):
            raise UnknownResult(f"answer is for out_request_no {node.get('out_request_no')!r}")
        try:
            amount_fen = parse_yuan(str(node["refund_amount"]))
        except MoneyFormatError:
            raise UnknownResult("alipay.trade.fastpay.refund.query: malformed refund_amount") from None
        return RefundResult(
            out_refund_no=out_refund_no,
            state=RefundState.SUCCEEDED,
            amount_fen=amount_fen,
            channel_refund_no=node.get("trade_no") or None,
            refunded_at=self._beijing_or_none(node.get("gmt_refund_pay"), "refund query"),
        )

    def download_bill(self, bill_date: date) -> list[BillLine]:
        """The day's trade bill: a signed call for its download URL, then the ZIP it
        names, read and checked by ``alipay_bill``."""
        try:
            node = self._call(alipay_bill.METHOD, alipay_bill.biz_content(bill_date))
        except ChannelRefused as refusal:
            raise alipay_bill.refusal_error(refusal) from None
        return alipay_bill.download(self._session, node, bill_date, self._settings.timeout_seconds)

    @staticmethod
    def _beijing_or_none(text: Any, what: str) -> datetime | None:
        if not text:
            return None
        try:
            return parse_beijing_time(str(text))
        except ValueError:
            raise UnknownResult(f"{what}: malformed time {text!r}") from None

    def _call(
        self,
        method: str,
        biz_content: Mapping[str, str],
        notify_url: str | None = None,
        not_found_ok: bool = False,
    ) -> dict[str, Any]:
        """Send one signed request; the verified node of a code-10000 answer.

        With ``not_found_ok``, also the node of a *signed* ACQ.TRADE_NOT_EXIST refusal:
        callers tell the two apart by ``node["code"]``.
        """
        params = {
            "app_id": self._settings.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": format_beijing_time(self._clock()),
            "version": "1.0",
            "biz_content": json.dumps(biz_content, ensure_ascii=False, separators=(",", ":")),
        }
        if notify_url:
            params["notify_url"] = notify_url
        params["sign"] = sign_params(params, self._app_private_key)
        try:
            response = self._session.post(
                self._settings.gateway_url, data=params, timeout=self._settings.timeout_seconds
            )
        except requests.RequestException as exc:
            raise UnknownResult(f"{method}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise UnknownResult(f"{method}: HTTP {response.status_code}")
        node, signed = self._read_response(method, response.content)
        code, sub_code = str(node.get("code")), str(node.get("sub_code") or "")
        if code == CODE_SUCCESS and signed:
            return node
        if code == CODE_SUCCESS:
            raise SignatureError(f"{method}: unsigned success answer")
        if code == CODE_BUSY or sub_code in _BUSY_SUB_CODES:
            raise UnknownResult(f"{method}: {code} {sub_code}".rstrip())
        if signed and not_found_ok and sub_code == SUB_CODE_TRADE_NOT_EXIST:
            return node
        log.info("alipay %s refused: code=%s sub_code=%s signed=%s", method, code, sub_code, signed)
        raise ChannelRefused(
            sub_code or code, str(node.get("sub_msg") or node.get("msg") or ""), verified=signed
        )

    def _read_response(self, method: str, content: bytes) -> tuple[dict[str, Any], bool]:
        """The answer node and whether it carried a valid signature.

        A node under ``error_response`` (gateway-level errors) is never reported as
        signed, so it can only ever refuse.
        """
        try:
            body_text = content.decode("utf-8")
            spans = _top_level_spans(body_text)
            key = response_key(method)
            node_key = key if key in spans else "error_response"
            if node_key not in spans:
                raise ValueError(f"no {key}")
            node_text = body_text[slice(*spans[node_key])]
            node = json.loads(node_text)
            sign = _sign_of(body_text, spans)
        except (UnicodeDecodeError, ValueError, IndexError, RecursionError) as exc:
            raise UnknownResult(f"{method}: unparseable answer ({type(exc).__name__})") from None
        if not isinstance(node, dict):
            raise UnknownResult(f"{method}: answer node is not an object")
        if sign is None:
            return node, False
        if not rsa2_verify(node_text.encode("utf-8"), sign, self._alipay_public_key):
            raise SignatureError(f"{method}: answer signature does not verify")
        return node, node_key == key

    @staticmethod
    def _check_out_trade_no(node: Mapping[str, Any], expected: str) -> None:
        if node.get("out_trade_no") != expected:
            raise UnknownResult(f"answer is for out_trade_no {node.get('out_trade_no')!r}")

    # -- notifications --

    def parse_notification(self, body: bytes, headers: Mapping[str, str]) -> Notification:
        try:
            pairs = parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=True,
                errors="strict",
                max_num_fields=_NOTIFY_MAX_FIELDS,
            )
        except ValueError:  # UnicodeDecodeError included
            raise SignatureError("notification body is not UTF-8 form data") from None
        fields = dict(pairs)
        if len(fields) != len(pairs):
            raise SignatureError("notification repeats a field")
        if fields.get("sign_type") != "RSA2":
            raise SignatureError("notification sign_type is not RSA2")
        if not verify_params(fields, self._alipay_public_key):
            raise SignatureError("notification signature does not verify")
        for name, expected in (("app_id", self._settings.app_id), ("seller_id", self._settings.seller_id)):
            if fields.get(name) != expected:
                raise NotificationRejected(f"{name} mismatch")
        for name in _NOTIFY_REQUIRED:
            if not fields.get(name):
                raise NotificationRejected(f"missing {name}")
        for name in ("notify_id", "out_trade_no", "trade_no"):
            if not is_identifier(fields[name]):
                raise NotificationRejected(f"malformed {name}")
        state = _TRADE_STATES.get(fields["trade_status"])
        if state is None:
            raise NotificationRejected("unknown trade_status")
        try:
            amount_fen = parse_yuan(fields["total_amount"])
        except MoneyFormatError:
            raise NotificationRejected("malformed total_amount") from None
        try:
            paid_at = parse_beijing_time(fields["gmt_payment"]) if fields.get("gmt_payment") else None
        except ValueError:
            raise NotificationRejected("malformed gmt_payment") from None
        try:
            opened_at = parse_beijing_time(fields["gmt_create"]) if fields.get("gmt_create") else None
        except ValueError:
            raise NotificationRejected("malformed gmt_create") from None
        return Notification(
            channel=self.name,
            notify_id=fields["notify_id"],
            out_trade_no=fields["out_trade_no"],
            channel_trade_no=fields["trade_no"],
            state=state,
            amount_fen=amount_fen,
            currency="CNY",
            paid_at=paid_at,
            raw=MappingProxyType(fields),
            opened_at=opened_at,
        )

    def accepted_answer(self) -> NotifyAnswer:
        return NotifyAnswer(200, "success")

    def rejected_answer(self, reason: str) -> NotifyAnswer:
        """Alipay retries anything but ``success``; ``reason`` is for our logs only."""
        return NotifyAnswer(200, "failure")

    def unavailable_answer(self) -> NotifyAnswer:
        return NotifyAnswer(500, "failure")
