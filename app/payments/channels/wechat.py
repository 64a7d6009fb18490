"""WeChat Pay API v3 adapter: Native pay (QR code), query, close, refund, callbacks.

Requests are signed with the merchant's API key over
``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n``; every answer and every callback is
verified with the platform public key over ``TIMESTAMP\\nNONCE\\nBODY\\n`` before any of
it is believed. Callback resources are AES-256-GCM encrypted with the APIv3 key.
"""
from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Callable, Mapping
from urllib.parse import urlencode

import requests

from app.payments.channels import wechat_bill
from app.payments.channels.base import (
    BillLine,
    ChannelRefused,
    ChargeIntent,
    ChargeRequest,
    Notification,
    NotificationRejected,
    NotifyAnswer,
    RefundNotification,
    RefundRequest,
    RefundResult,
    RefundState,
    SignatureError,
    TradeState,
    TradeStatus,
    UnknownResult,
    is_identifier,
)
from app.payments.channels.crypto import (
    DecryptionError,
    aes_gcm_decrypt,
    load_private_key,
    load_public_key,
    rsa2_sign,
    rsa2_verify,
)
from app.payments.channels.wechat_format import (
    answer_message,
    format_rfc3339,
    parse_channel_json,
    parse_rfc3339,
    request_message,
    truncate_utf8,
)

log = logging.getLogger(__name__)

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
# WeChat Pay refuses callbacks and answers older or newer than this; so do we.
MAX_CLOCK_SKEW = timedelta(minutes=5)
_TRADE_STATE_REFUNDED = "REFUND"  # 转入退款
_TRADE_STATES = {
    "NOTPAY": TradeState.PENDING,
    "USERPAYING": TradeState.PENDING,
    "PAYERROR": TradeState.PENDING,  # not final: the payer may still pay before the deadline
    "SUCCESS": TradeState.PAID,
    _TRADE_STATE_REFUNDED: TradeState.PAID,  # paid, then (partly) refunded: the money did arrive
    "CLOSED": TradeState.CLOSED,
    "REVOKED": TradeState.CLOSED,
}
_REFUND_STATES = {
    "PROCESSING": RefundState.PROCESSING,
    "SUCCESS": RefundState.SUCCEEDED,
    "CLOSED": RefundState.FAILED,
    "ABNORMAL": RefundState.FAILED,
}
_NOT_FOUND_CODES = frozenset({"ORDER_NOT_EXIST", "RESOURCE_NOT_EXISTS"})
_REFUND_EVENTS = frozenset({"REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED"})
_MAX_CALLBACK_BYTES = 64 * 1024


@dataclass(frozen=True)
class WechatSettings:
    mch_id: str
    app_id: str
    merchant_private_key_pem: str = field(repr=False)
    merchant_cert_serial: str
    apiv3_key: str = field(repr=False)
    platform_public_key_pem: str = field(repr=False)
    platform_public_key_id: str
    api_base_url: str  # "https://api.mch.weixin.qq.com", or the emulator's
    timeout_seconds: float = 10.0


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return ""


class WechatChannel:
    """The PaymentChannel for WeChat Pay Native (the payer scans our QR code)."""

    name = "wechat"
    notify_content_type = "application/json"

    def __init__(
        self,
        settings: WechatSettings,
        session: requests.Session,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._clock = clock or _utc_now
        self._merchant_key = load_private_key(settings.merchant_private_key_pem)
        self._platform_key = load_public_key(settings.platform_public_key_pem)
        self._apiv3_key = settings.apiv3_key.encode("utf-8")

    # -- requests --

    def precreate(self, charge: ChargeRequest) -> ChargeIntent:
        if charge.expires_at <= self._clock():
            raise ValueError(f"charge {charge.out_trade_no} expired before precreate")
        answer = self._call(
            "POST",
            "/v3/pay/transactions/native",
            {
                "appid": self._settings.app_id,
                "mchid": self._settings.mch_id,
                "description": truncate_utf8(charge.subject, 127),
                "out_trade_no": charge.out_trade_no,
                # The order's own deadline, to the second: the QR dies when the order does.
                "time_expire": format_rfc3339(charge.expires_at),
                "notify_url": charge.notify_url,
                "amount": {"total": charge.amount_fen, "currency": "CNY"},
            },
        )
        code_url = answer.get("code_url")
        if not isinstance(code_url, str) or not code_url:
            raise UnknownResult("native: success without code_url")
        return ChargeIntent(out_trade_no=charge.out_trade_no, qr_code=code_url)

    def query(self, out_trade_no: str) -> TradeStatus:
        try:
            answer = self._call(
                "GET",
                f"/v3/pay/transactions/out-trade-no/{out_trade_no}",
                query={"mchid": self._settings.mch_id},
            )
        except ChannelRefused as refusal:
            if refusal.verified and refusal.code in _NOT_FOUND_CODES:
                return TradeStatus(out_trade_no=out_trade_no, state=TradeState.NOT_FOUND)
            raise
        transaction = self._check_transaction(answer, out_trade_no, UnknownResult)
        return TradeStatus(
            out_trade_no=out_trade_no,
            state=transaction.state,
            amount_fen=transaction.amount_fen,
            channel_trade_no=transaction.transaction_id,
            paid_at=transaction.paid_at,
            refunded=transaction.refunded,
        )

    def close(self, out_trade_no: str) -> TradeState:
        """CLOSED or NOT_FOUND. A paid trade is refused (ORDERPAID) as ChannelRefused, so
        the caller queries before deciding anything."""
        try:
            self._call(
                "POST",
                f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
                {"mchid": self._settings.mch_id},
            )
        except ChannelRefused as refusal:
            if refusal.verified and refusal.code in _NOT_FOUND_CODES:
                return TradeState.NOT_FOUND
            raise
        return TradeState.CLOSED

    def refund(self, refund: RefundRequest) -> RefundResult:
        answer = self._call(
            "POST",
            "/v3/refund/domestic/refunds",
            {
                "out_trade_no": refund.out_trade_no,
                "out_refund_no": refund.out_refund_no,
                "reason": truncate_utf8(refund.reason, 80),
                **({"notify_url": refund.notify_url} if refund.notify_url else {}),
                "amount": {
                    "refund": refund.amount_fen,
                    "total": refund.total_fen,
                    "currency": "CNY",
                },
            },
        )
        return self._refund_result(answer, refund.out_refund_no)

    def query_refund(self, out_trade_no: str, out_refund_no: str) -> RefundResult | None:
        try:
            answer = self._call("GET", f"/v3/refund/domestic/refunds/{out_refund_no}")
        except ChannelRefused as refusal:
            if refusal.verified and refusal.code in _NOT_FOUND_CODES:
                return None
            raise
        if answer.get("out_trade_no") not in (None, out_trade_no):
            raise UnknownResult(f"refund {out_refund_no} belongs to another trade")
        return self._refund_result(answer, out_refund_no)

    def _refund_result(self, answer: Mapping[str, Any], out_refund_no: str) -> RefundResult:
        if answer.get("out_refund_no") != out_refund_no:
            raise UnknownResult(f"answer is for out_refund_no {answer.get('out_refund_no')!r}")
        state = _REFUND_STATES.get(str(answer.get("status")))
        amount = answer.get("amount")
        refunded = amount.get("refund") if isinstance(amount, dict) else None
        if state is None or not isinstance(refunded, int) or isinstance(refunded, bool):
            raise UnknownResult("refund answer lacks a status or an amount")
        success_time = answer.get("success_time")
        try:
            refunded_at = parse_rfc3339(success_time) if success_time else None
        except (TypeError, ValueError):
            raise UnknownResult("refund answer has a malformed success_time") from None
        return RefundResult(
            out_refund_no=out_refund_no,
            state=state,
            amount_fen=refunded,
            channel_refund_no=answer.get("refund_id") or None,
            refunded_at=refunded_at,
        )

    def download_bill(self, bill_date: date) -> list[BillLine]:
        """The day's trade bill (bill_type ALL): a signed call for its address and SHA1,
        then the file, fetched with our Authorization and checked against that hash."""
        try:
            answer = self._call("GET", wechat_bill.TRADEBILL_PATH, query=wechat_bill.bill_query(bill_date))
        except ChannelRefused as refusal:
            return wechat_bill.lines_for_refusal(refusal, bill_date, self._clock())
        path = wechat_bill.download_path(answer, self._settings.api_base_url)
        url = self._settings.api_base_url.rstrip("/") + path
        authorization = self._authorization("GET", path, "")
        payload = wechat_bill.fetch(self._session, url, authorization, answer, self._settings.timeout_seconds)
        return wechat_bill.parse_bill(payload, self._settings.mch_id)

    def _call(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send one signed request; the verified JSON of a 2xx answer (``{}`` for 204).

        A verified 4xx raises ChannelRefused with WeChat's code; 5xx, 429, network
        errors and anything unverifiable raise UnknownResult or SignatureError.
        """
        path_with_query = path + ("?" + urlencode(query) if query else "")
        body = "" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        url = self._settings.api_base_url.rstrip("/") + path_with_query
        headers = {
            "Authorization": self._authorization(method, path_with_query, body),
            "Accept": "application/json",
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self._session.request(
                method, url, data=body.encode("utf-8") if body else None, headers=headers,
                timeout=self._settings.timeout_seconds,
            )
        except requests.RequestException as exc:
            raise UnknownResult(f"{method} {path}: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise UnknownResult(f"{method} {path}: HTTP {response.status_code}")
        what = f"{method} {path}"
        # WeChat Pay does not sign every refusal (a request it could not authenticate,
        # say): an unsigned 4xx still refuses, but proves nothing about a trade.
        signed = response.status_code < 400 or _header(response.headers, "Wechatpay-Signature")
        text = self._verified_text(response, what) if signed else self._text(response, what)
        try:
            answer = json.loads(text) if text else {}
        except ValueError:
            raise UnknownResult(f"{what}: answer is not JSON") from None
        if not isinstance(answer, dict):
            raise UnknownResult(f"{what}: answer is not a JSON object")
        if 200 <= response.status_code < 300:
            return answer
        code = str(answer.get("code") or f"HTTP_{response.status_code}")
        log.info("wechat %s refused: %s (signed=%s)", what, code, bool(signed))
        raise ChannelRefused(code, str(answer.get("message") or ""), verified=bool(signed))

    def _authorization(self, method: str, path_with_query: str, body: str) -> str:
        timestamp = str(int(self._clock().timestamp()))
        nonce = secrets.token_hex(16).upper()
        # The platform signs the path it receives, so a base URL with a path prefix (the
        # emulator's) is not part of the canonical request.
        message = request_message(method, path_with_query, timestamp, nonce, body)
        signature = rsa2_sign(message.encode("utf-8"), self._merchant_key)
        return (
            f'{SIGNATURE_TYPE} mchid="{self._settings.mch_id}",nonce_str="{nonce}",'
            f'signature="{signature}",timestamp="{timestamp}",'
            f'serial_no="{self._settings.merchant_cert_serial}"'
        )

    @staticmethod
    def _text(response: requests.Response, what: str) -> str:
        try:
            return response.content.decode("utf-8")
        except UnicodeDecodeError:
            raise UnknownResult(f"{what}: answer is not UTF-8") from None

    def _verified_text(self, response: requests.Response, what: str) -> str:
        text = self._text(response, what)
        self._verify(response.headers, text, check_age=False, what=what)
        return text

    def _verify(self, headers: Mapping[str, str], body: str, check_age: bool, what: str) -> None:
        timestamp = _header(headers, "Wechatpay-Timestamp")
        nonce = _header(headers, "Wechatpay-Nonce")
        signature = _header(headers, "Wechatpay-Signature")
        serial = _header(headers, "Wechatpay-Serial")
        signature_type = _header(headers, "Wechatpay-Signature-Type")
        if not (timestamp and nonce and signature):
            raise SignatureError(f"{what}: unsigned")
        if signature_type and signature_type != SIGNATURE_TYPE:
            raise SignatureError(f"{what}: signature type {signature_type[:64]!r}")
        if serial != self._settings.platform_public_key_id:
            raise SignatureError(f"{what}: signed with unknown key {serial[:64]!r}")
        if check_age:
            try:
                signed_at = datetime.fromtimestamp(int(timestamp), timezone.utc)
            except (ValueError, OverflowError, OSError):
                raise SignatureError(f"{what}: malformed timestamp") from None
            if abs(self._clock() - signed_at) > MAX_CLOCK_SKEW:
                raise SignatureError(f"{what}: timestamp outside ±5 minutes")
        message = answer_message(timestamp, nonce, body)
        if not rsa2_verify(message.encode("utf-8"), signature, self._platform_key):
            raise SignatureError(f"{what}: signature does not verify")

    # -- callbacks --

    def parse_notification(
        self, body: bytes, headers: Mapping[str, str]
    ) -> Notification | RefundNotification:
        if len(body) > _MAX_CALLBACK_BYTES:
            raise NotificationRejected("callback too large")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise SignatureError("callback body is not UTF-8") from None
        self._verify(headers, text, check_age=True, what="callback")
        try:
            event = parse_channel_json(text)
            resource = event["resource"]
            event_id, event_type = event["id"], event["event_type"]
            if not isinstance(resource, dict) or not is_identifier(event_id) or not isinstance(event_type, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise NotificationRejected("callback is not a WeChat Pay event") from None
        if event_type in _REFUND_EVENTS:
            return self._refund_notification(self._decrypt(resource))
        if event_type != "TRANSACTION.SUCCESS":
            raise NotificationRejected(f"unexpected event_type {event_type[:64]!r}")
        plaintext = self._decrypt(resource)
        try:
            answer = parse_channel_json(plaintext)
        except (ValueError, TypeError):
            raise NotificationRejected("resource is not JSON") from None
        if not isinstance(answer, dict):
            raise NotificationRejected("resource is not a JSON object")
        out_trade_no = answer.get("out_trade_no")
        if not is_identifier(out_trade_no):
            raise NotificationRejected("missing or malformed out_trade_no")
        transaction = self._check_transaction(answer, out_trade_no, NotificationRejected)
        if transaction.state is not TradeState.PAID or not transaction.transaction_id:
            raise NotificationRejected("TRANSACTION.SUCCESS for an unpaid transaction")
        if not is_identifier(transaction.transaction_id):
            raise NotificationRejected("malformed transaction_id")
        return Notification(
            channel=self.name,
            notify_id=event_id,
            out_trade_no=out_trade_no,
            channel_trade_no=transaction.transaction_id,
            state=transaction.state,
            amount_fen=transaction.amount_fen,
            currency=transaction.currency,
            paid_at=transaction.paid_at,
            raw=MappingProxyType({"event_id": event_id, "event_type": event_type, "resource": plaintext}),
        )

    def _refund_notification(self, plaintext: str) -> RefundNotification:
        try:
            refund = json.loads(plaintext)
            amount = refund["amount"]["refund"]
            out_trade_no, out_refund_no = refund["out_trade_no"], refund["out_refund_no"]
        except (ValueError, KeyError, TypeError):
            raise NotificationRejected("refund resource is malformed") from None
        if refund.get("mchid") != self._settings.mch_id:
            raise NotificationRejected("mchid mismatch")
        state = _REFUND_STATES.get(str(refund.get("refund_status")))
        if state is None or not isinstance(amount, int) or isinstance(amount, bool):
            raise NotificationRejected("refund resource lacks a status or an amount")
        if not isinstance(out_trade_no, str) or not isinstance(out_refund_no, str):
            raise NotificationRejected("refund resource lacks its numbers")
        return RefundNotification(self.name, out_trade_no, out_refund_no, state, amount)

    def _decrypt(self, resource: Mapping[str, Any]) -> str:
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise NotificationRejected("resource algorithm is not AEAD_AES_256_GCM")
        nonce, ciphertext = resource.get("nonce"), resource.get("ciphertext")
        associated_data = resource.get("associated_data") or ""
        if not isinstance(nonce, str) or not isinstance(ciphertext, str) or not isinstance(associated_data, str):
            raise NotificationRejected("resource lacks nonce or ciphertext")
        try:
            plaintext = aes_gcm_decrypt(
                self._apiv3_key, nonce.encode("utf-8"), ciphertext, associated_data.encode("utf-8")
            )
            return plaintext.decode("utf-8")
        except (DecryptionError, UnicodeDecodeError):
            # Signed by the platform yet not ours to read: a wrong APIv3 key, or tampering.
            raise SignatureError("resource does not decrypt with our APIv3 key") from None

    def _check_transaction(
        self, answer: Mapping[str, Any], out_trade_no: str, error: type[Exception]
    ) -> _Transaction:
        """The transaction fields we rely on, checked to be ours and well-formed."""
        if answer.get("mchid") != self._settings.mch_id:
            raise error("mchid mismatch")
        if answer.get("appid") != self._settings.app_id:
            raise error("appid mismatch")
        if answer.get("out_trade_no") != out_trade_no:
            raise error(f"transaction is for out_trade_no {answer.get('out_trade_no')!r}")
        state = _TRADE_STATES.get(str(answer.get("trade_state")))
        amount = answer.get("amount")
        total = amount.get("total") if isinstance(amount, dict) else None
        currency = amount.get("currency") if isinstance(amount, dict) else None
        if state is None:
            raise error(f"unknown trade_state {answer.get('trade_state')!r}")
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            raise error("malformed amount.total")
        success_time = answer.get("success_time")
        try:
            paid_at = parse_rfc3339(success_time) if success_time else None
        except (TypeError, ValueError):
            raise error("malformed success_time") from None
        transaction_id = answer.get("transaction_id")
        return _Transaction(
            state=state,
            amount_fen=total,
            currency=currency if isinstance(currency, str) else "",
            transaction_id=transaction_id if isinstance(transaction_id, str) and transaction_id else None,
            paid_at=paid_at,
            refunded=answer.get("trade_state") == _TRADE_STATE_REFUNDED,
        )

    def accepted_answer(self) -> NotifyAnswer:
        return NotifyAnswer(204, "")

    def rejected_answer(self, reason: str) -> NotifyAnswer:
        """A 4xx that WeChat Pay logs and retries."""
        body = json.dumps({"code": "FAIL", "message": reason[:200]}, ensure_ascii=False)
        return NotifyAnswer(400, body, "application/json")

    def unavailable_answer(self) -> NotifyAnswer:
        body = json.dumps({"code": "FAIL", "message": "temporarily unavailable"})
        return NotifyAnswer(500, body, "application/json")


@dataclass(frozen=True)
class _Transaction:
    state: TradeState
    amount_fen: int
    currency: str
    transaction_id: str | None
    paid_at: datetime | None
    refunded: bool  # trade_state REFUND: some of the money has gone back
