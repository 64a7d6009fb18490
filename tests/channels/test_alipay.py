"""Alipay adapter against fixed test keys, checked with python-alipay-sdk as an
independent implementation of Alipay's published RSA2 rules."""
from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, TypeAlias
from urllib.parse import parse_qsl, urlencode

import pytest
import requests
import urllib3
from alipay import AliPay  # type: ignore[import-untyped]
from requests.adapters import HTTPAdapter

from app.payments.channels.alipay import (
    AlipayChannel,
    AlipaySettings,
    extract_response_node,
    sign_params,
    signed_response_body,
    signing_content,
    verify_params,
)
from app.payments.channels.base import (
    ChannelRefused,
    ChargeRequest,
    NotificationRejected,
    SignatureError,
    TradeState,
    UnknownResult,
)
from app.payments.channels.crypto import (
    KeyFormatError,
    generate_rsa_keypair,
    load_private_key,
    load_public_key,
    rsa2_sign,
    rsa2_verify,
)

KEYS = Path(__file__).resolve().parent.parent / "keys"
APP_PRIVATE = (KEYS / "alipay_app_private.pem").read_text()
APP_PUBLIC = (KEYS / "alipay_app_public.pem").read_text()
PLATFORM_PRIVATE = (KEYS / "alipay_platform_private.pem").read_text()
PLATFORM_PUBLIC = (KEYS / "alipay_platform_public.pem").read_text()
APP_ID = "2021000000000001"
SELLER_ID = "2088000000000001"
GATEWAY = "https://openapi.alipay.test/gateway.do"
NOW = datetime(2024, 5, 1, 2, 0, 0, tzinfo=timezone.utc)  # 10:00:00 in Beijing
BEIJING = timezone(timedelta(hours=8))
PLATFORM_KEY = load_private_key(PLATFORM_PRIVATE)

Outcome: TypeAlias = str | bytes | tuple[int, str] | Exception
Reply = Callable[[requests.PreparedRequest], Outcome]


class FakeAlipayGateway(HTTPAdapter):
    """Plays the remote gateway: records each request, answers with ``reply``."""

    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self.reply = reply
        self.forms: list[dict[str, str]] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        self.forms.append(dict(parse_qsl(body, keep_blank_values=True, strict_parsing=True)))
        outcome = self.reply(request)
        if isinstance(outcome, Exception):
            raise outcome
        status, text = outcome if isinstance(outcome, tuple) else (200, outcome)
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(text if isinstance(text, bytes) else text.encode("utf-8")),
            status=status,
            headers={"Content-Type": "text/html;charset=utf-8"},
            preload_content=False,
        )
        return self.build_response(request, raw)


def make_channel(reply: Reply) -> tuple[AlipayChannel, FakeAlipayGateway]:
    gateway = FakeAlipayGateway(reply)
    session = requests.Session()
    session.mount("https://", gateway)
    settings = AlipaySettings(APP_ID, SELLER_ID, APP_PRIVATE, PLATFORM_PUBLIC, GATEWAY)
    return AlipayChannel(settings, session, clock=lambda: NOW), gateway


def signed(method: str, node: dict[str, str]) -> Callable[[object], str]:
    return lambda request: signed_response_body(method, node, PLATFORM_KEY)


def charge(expires_in: timedelta) -> ChargeRequest:
    return ChargeRequest("A20240501000001", 9450, "Python 入门课", NOW + expires_in, "https://shop.test/notify/alipay")


PRECREATE_OK = {"code": "10000", "msg": "Success", "out_trade_no": "A20240501000001", "qr_code": "https://qr.alipay.com/bax01"}


def oracle(private_pem: str, public_pem: str) -> AliPay:
    return AliPay(appid=APP_ID, app_notify_url=None, app_private_key_string=private_pem,
                  alipay_public_key_string=public_pem, sign_type="RSA2")


# --- requests --------------------------------------------------------------------------


def test_precreate_request_is_signed_the_way_alipay_verifies_it() -> None:
    channel, gateway = make_channel(signed("alipay.trade.precreate", PRECREATE_OK))
    intent = channel.precreate(charge(timedelta(minutes=14, seconds=59)))
    assert intent.qr_code == "https://qr.alipay.com/bax01"
    form = gateway.forms[0]
    sign = form.pop("sign")
    # Alipay verifies requests over every other param, sign_type included, sorted, raw.
    content = "&".join(f"{k}={v}" for k, v in sorted(form.items()))
    assert oracle(PLATFORM_PRIVATE, APP_PUBLIC)._verify(content, sign)
    # PKCS#1 v1.5 is deterministic, so the SDK signing the same form must agree exactly.
    assert dict(parse_qsl(oracle(APP_PRIVATE, PLATFORM_PUBLIC).sign_data(dict(form))))["sign"] == sign
    assert form["timestamp"] == "2024-05-01 10:00:00"
    assert {k: form[k] for k in ("app_id", "method", "format", "charset", "sign_type", "version")} == {
        "app_id": APP_ID, "method": "alipay.trade.precreate", "format": "JSON",
        "charset": "utf-8", "sign_type": "RSA2", "version": "1.0"}
    assert form["notify_url"] == "https://shop.test/notify/alipay"
    assert form["biz_content"] == (
        '{"out_trade_no":"A20240501000001","total_amount":"94.50",'
        '"subject":"Python 入门课","timeout_express":"14m"}'
    )


@pytest.mark.parametrize(("left", "expected"), [
    (timedelta(seconds=30), "1m"), (timedelta(minutes=1, seconds=59), "1m"), (timedelta(minutes=15), "15m")])
def test_timeout_express_rounds_down_to_whole_minutes(left: timedelta, expected: str) -> None:
    channel, gateway = make_channel(signed("alipay.trade.precreate", PRECREATE_OK))
    channel.precreate(charge(left))
    assert json.loads(gateway.forms[0]["biz_content"])["timeout_express"] == expected


def test_precreate_refuses_an_already_expired_charge_without_calling_alipay() -> None:
    channel, gateway = make_channel(signed("alipay.trade.precreate", PRECREATE_OK))
    with pytest.raises(ValueError):
        channel.precreate(charge(timedelta(0)))
    assert gateway.forms == []


def test_precreate_answer_for_another_trade_is_unknown() -> None:
    channel, _ = make_channel(signed("alipay.trade.precreate", {**PRECREATE_OK, "out_trade_no": "OTHER"}))
    with pytest.raises(UnknownResult):
        channel.precreate(charge(timedelta(minutes=15)))


def test_signed_response_body_verifies_with_the_sdk() -> None:
    node = {"code": "10000", "msg": "Success", "out_trade_no": "A1", "subject": "课程 \"{}\""}
    body = signed_response_body("alipay.trade.query", node, PLATFORM_KEY)
    sdk = oracle(APP_PRIVATE, PLATFORM_PUBLIC)
    assert sdk._verify_and_return_sync_response(body, "alipay_trade_query_response") == node


# --- responses -------------------------------------------------------------------------


def test_tampered_response_node_is_a_signature_error() -> None:
    body = signed_response_body("alipay.trade.precreate", PRECREATE_OK, PLATFORM_KEY)
    forged = body.replace("bax01", "evil1")
    channel, _ = make_channel(lambda request: forged)
    with pytest.raises(SignatureError):
        channel.precreate(charge(timedelta(minutes=15)))


def test_response_signed_by_another_key_is_a_signature_error() -> None:
    other = load_private_key(APP_PRIVATE)
    channel, _ = make_channel(lambda r: signed_response_body("alipay.trade.precreate", PRECREATE_OK, other))
    with pytest.raises(SignatureError):
        channel.precreate(charge(timedelta(minutes=15)))


def test_unsigned_success_is_a_signature_error() -> None:
    body = json.dumps({"alipay_trade_precreate_response": PRECREATE_OK})
    channel, _ = make_channel(lambda request: body)
    with pytest.raises(SignatureError):
        channel.precreate(charge(timedelta(minutes=15)))


def test_unsigned_error_answer_is_a_refusal() -> None:
    node = {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature", "sub_msg": "验签出错"}
    channel, _ = make_channel(lambda request: json.dumps({"alipay_trade_query_response": node, "sign": ""}))
    with pytest.raises(ChannelRefused) as refused:
        channel.query("A1")
    assert refused.value.code == "isv.invalid-signature"


def test_gateway_error_response_can_only_refuse() -> None:
    node = {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-app-id"}
    channel, _ = make_channel(lambda request: json.dumps({"error_response": node, "sign": ""}))
    with pytest.raises(ChannelRefused):
        channel.query("A1")
    success = {"code": "10000", "out_trade_no": "A1", "trade_status": "TRADE_SUCCESS", "total_amount": "94.50"}
    body = signed_response_body("error", success, PLATFORM_KEY)  # a validly signed "error_response"
    channel, _ = make_channel(lambda request: body)
    with pytest.raises(SignatureError):
        channel.query("A1")


def test_unsigned_trade_not_exist_is_not_trusted_as_not_found() -> None:
    node = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"}
    channel, _ = make_channel(lambda request: json.dumps({"alipay_trade_query_response": node}))
    with pytest.raises(ChannelRefused):
        channel.query("A1")


@pytest.mark.parametrize("outcome", [
    (200, signed_response_body("alipay.trade.query", {"code": "20000", "msg": "Service Currently Unavailable",
                                                       "sub_code": "aop.unknow-error"}, PLATFORM_KEY)),
    (200, signed_response_body("alipay.trade.query", {"code": "40004", "msg": "Business Failed",
                                                       "sub_code": "ACQ.SYSTEM_ERROR"}, PLATFORM_KEY)),
    requests.ConnectionError("connection reset"),
    requests.ReadTimeout("read timed out"),
    (502, signed_response_body("alipay.trade.query", {"code": "10000", "out_trade_no": "A1",
                                                       "trade_status": "TRADE_SUCCESS"}, PLATFORM_KEY)),
    (200, "<html>not json</html>"),
    (200, '{"other_response":{"code":"10000"},"sign":"x"}'),
    '{"alipay_trade_query_response":{"code":"10000","msg":"\xff"}}'.encode("latin-1"),
], ids=["busy", "system-error", "connection-error", "timeout", "http-502", "not-json", "no-node", "not-utf8"])
def test_unknown_outcomes_raise_unknown_result(outcome: Outcome) -> None:
    channel, _ = make_channel(lambda request: outcome)
    with pytest.raises(UnknownResult):
        channel.query("A1")


@pytest.mark.parametrize(("trade_status", "state"), [
    ("WAIT_BUYER_PAY", TradeState.PENDING), ("TRADE_SUCCESS", TradeState.PAID),
    ("TRADE_FINISHED", TradeState.PAID), ("TRADE_CLOSED", TradeState.CLOSED)])
def test_query_maps_trade_status(trade_status: str, state: TradeState) -> None:
    node = {"code": "10000", "msg": "Success", "out_trade_no": "A1", "trade_no": "2024050122001",
            "trade_status": trade_status, "total_amount": "94.50", "send_pay_date": "2024-05-01 10:03:04"}
    channel, gateway = make_channel(signed("alipay.trade.query", node))
    status = channel.query("A1")
    assert (status.state, status.amount_fen, status.channel_trade_no) == (state, 9450, "2024050122001")
    assert status.paid_at == datetime(2024, 5, 1, 10, 3, 4, tzinfo=BEIJING)
    assert json.loads(gateway.forms[0]["biz_content"]) == {"out_trade_no": "A1"}


@pytest.mark.parametrize("method", ["alipay.trade.query", "alipay.trade.close"])
def test_signed_trade_not_exist_is_not_found(method: str) -> None:
    node = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "交易不存在"}
    channel, _ = make_channel(signed(method, node))
    answer = channel.query("A1") if method == "alipay.trade.query" else channel.close("A1")
    assert getattr(answer, "state", answer) is TradeState.NOT_FOUND


def test_close_success_and_close_of_a_paid_trade() -> None:
    channel, _ = make_channel(signed("alipay.trade.close", {"code": "10000", "msg": "Success", "out_trade_no": "A1"}))
    assert channel.close("A1") is TradeState.CLOSED
    paid = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_STATUS_ERROR", "sub_msg": "交易状态不合法"}
    channel, _ = make_channel(signed("alipay.trade.close", paid))
    with pytest.raises(ChannelRefused) as refused:
        channel.close("A1")
    assert refused.value.code == "ACQ.TRADE_STATUS_ERROR"


def test_extract_response_node_returns_the_exact_substring() -> None:
    node_text = '{ "code":"10000", "a":{"b":[1,{"c":"}"}]}, "q":"say \\"}{\\" \\\\", "u":"\\u8bfe 课", "n":null }'
    body = ('{"decoy":"\\"alipay_trade_query_response\\":{\\"code\\":\\"10000\\"}",\n'
            f' "alipay_trade_query_response" : {node_text} ,\n "sign":"c2ln\\/bg=="}}')
    assert extract_response_node(body, "alipay.trade.query") == (node_text, "c2ln/bg==")
    assert extract_response_node('{"alipay_trade_close_response":{}}', "alipay.trade.close") == ("{}", None)
    with pytest.raises(ValueError):
        extract_response_node('{"alipay_trade_close_response":{}', "alipay.trade.close")


# --- notifications ---------------------------------------------------------------------

NOTIFY_FIELDS = {
    "notify_time": "2024-05-01 10:03:05", "notify_type": "trade_status_sync", "notify_id": "ac05099524730693a8b330c5ecf72da9786",
    "charset": "utf-8", "version": "1.0", "app_id": APP_ID, "seller_id": SELLER_ID, "buyer_id": "2088102122524333",
    "out_trade_no": "A20240501000001", "trade_no": "2024050122001426", "trade_status": "TRADE_SUCCESS",
    "total_amount": "94.50", "receipt_amount": "94.50", "subject": "Python 入门课", "gmt_create": "2024-05-01 10:02:00",
    "gmt_payment": "2024-05-01 10:03:04", "fund_bill_list": '[{"amount":"94.50","fundChannel":"ALIPAYACCOUNT"}]',
}


def notification_body(fields: dict[str, str], **changes: str) -> bytes:
    """Signed the way Alipay signs notifications (without sign_type), by the SDK."""
    sign = dict(parse_qsl(oracle(PLATFORM_PRIVATE, APP_PUBLIC).sign_data(dict(fields))))["sign"]
    return urlencode({**fields, "sign": sign, "sign_type": "RSA2", **changes}).encode()


def notify_channel() -> AlipayChannel:
    return make_channel(lambda request: AssertionError("no HTTP expected"))[0]


def test_sdk_signed_notification_is_accepted() -> None:
    notification = notify_channel().parse_notification(notification_body(NOTIFY_FIELDS), {})
    assert (notification.channel, notification.notify_id, notification.out_trade_no) == (
        "alipay", NOTIFY_FIELDS["notify_id"], "A20240501000001")
    assert (notification.channel_trade_no, notification.state, notification.amount_fen, notification.currency) == (
        "2024050122001426", TradeState.PAID, 9450, "CNY")
    assert notification.paid_at == datetime(2024, 5, 1, 2, 3, 4, tzinfo=timezone.utc)
    assert notification.raw["subject"] == "Python 入门课"


def test_a_notification_says_when_the_payer_opened_the_trade() -> None:
    """gmt_create, the scan that created the trade, in Beijing time (issue 11's timeline)."""
    notification = notify_channel().parse_notification(notification_body(NOTIFY_FIELDS), {})
    assert notification.opened_at == datetime(2024, 5, 1, 2, 2, 0, tzinfo=timezone.utc)
    without = {name: value for name, value in NOTIFY_FIELDS.items() if name != "gmt_create"}
    assert notify_channel().parse_notification(notification_body(without), {}).opened_at is None


def test_a_properly_signed_malformed_gmt_create_is_rejected() -> None:
    with pytest.raises(NotificationRejected, match="gmt_create"):
        notify_channel().parse_notification(notification_body({**NOTIFY_FIELDS, "gmt_create": "yesterday"}), {})


@pytest.mark.parametrize("name", sorted(NOTIFY_FIELDS))
def test_any_field_changed_after_signing_is_a_signature_error(name: str) -> None:
    with pytest.raises(SignatureError):
        notify_channel().parse_notification(notification_body(NOTIFY_FIELDS, **{name: NOTIFY_FIELDS[name] + "1"}), {})


def test_added_or_removed_field_is_a_signature_error() -> None:
    channel = notify_channel()
    with pytest.raises(SignatureError):
        channel.parse_notification(notification_body(NOTIFY_FIELDS, refund_fee="94.50"), {})
    body = notification_body(NOTIFY_FIELDS).decode()
    with pytest.raises(SignatureError):
        channel.parse_notification(re.sub(r"&?buyer_id=\d+", "", body).encode(), {})


@pytest.mark.parametrize(("name", "value"), [("app_id", "2021999999999999"), ("seller_id", "2088999999999999")])
def test_properly_signed_notification_for_another_merchant_is_rejected(name: str, value: str) -> None:
    with pytest.raises(NotificationRejected, match=f"{name} mismatch"):
        notify_channel().parse_notification(notification_body({**NOTIFY_FIELDS, name: value}), {})


@pytest.mark.parametrize("amount", ["94.5O", "-94.50", "94.505", "1e3", " "])
def test_properly_signed_malformed_total_amount_is_rejected(amount: str) -> None:
    with pytest.raises(NotificationRejected):
        notify_channel().parse_notification(notification_body({**NOTIFY_FIELDS, "total_amount": amount}), {})


@pytest.mark.parametrize("body", [
    b"", b"not a form", b"\xff\xfe=\x00", b"a=1&&b=2",
    notification_body(NOTIFY_FIELDS, sign="%%%not-base64%%%"),
    notification_body(NOTIFY_FIELDS, sign=""),
    notification_body(NOTIFY_FIELDS, sign_type="RSA"),
    b"out_trade_no=A20240501000002&" + notification_body(NOTIFY_FIELDS),
    urlencode(NOTIFY_FIELDS).encode(),
], ids=["empty", "not-form", "not-utf8", "empty-field", "bad-base64", "blank-sign", "rsa1", "repeated", "unsigned"])
def test_garbage_notifications_are_signature_errors(body: bytes) -> None:
    with pytest.raises(SignatureError):
        notify_channel().parse_notification(body, {})


def test_notify_answers_are_exactly_what_alipay_expects() -> None:
    channel = notify_channel()
    assert (channel.accepted_answer().status, channel.accepted_answer().body) == (200, "success")
    assert channel.rejected_answer("secret reason").body == "failure"


# --- wire helpers and crypto -----------------------------------------------------------


def test_params_round_trip_and_notification_rule_ignores_sign_type() -> None:
    params = {"b": "2", "a": "中文 & =", "empty": "", "sign_type": "RSA2"}
    assert signing_content(params) == "a=中文 & =&b=2&sign_type=RSA2"
    params["sign"] = sign_params({k: v for k, v in params.items() if k != "sign_type"}, PLATFORM_KEY)
    assert verify_params(params, load_public_key(PLATFORM_PUBLIC))
    assert not verify_params({**params, "b": "3"}, load_public_key(PLATFORM_PUBLIC))


def test_rsa2_round_trip_and_garbage_signatures() -> None:
    private_pem, public_pem = generate_rsa_keypair(1024)
    private_key, public_key = load_private_key(private_pem), load_public_key(public_pem)
    signature = rsa2_sign("课程".encode(), private_key)
    assert rsa2_verify("课程".encode(), signature, public_key)
    assert not rsa2_verify(b"other", signature, public_key)
    for garbage in ["", "!!!", "c2ln", signature[:-4], signature + "AAAA", "é" * 10]:
        assert not rsa2_verify("课程".encode(), garbage, public_key)


def test_bare_base64_key_bodies_load_like_pem() -> None:
    def body(pem: str) -> str:
        return "".join(line for line in pem.splitlines() if not line.startswith("-----"))

    private_key, public_key = load_private_key(body(APP_PRIVATE)), load_public_key(body(APP_PUBLIC))
    assert private_key == load_private_key(APP_PRIVATE) and public_key == load_public_key(APP_PUBLIC)
    assert rsa2_verify(b"m", rsa2_sign(b"m", private_key), public_key)
    for bad in ["", "not base64!", "c2ln"]:
        with pytest.raises(KeyFormatError):
            load_public_key(bad)
    with pytest.raises(KeyFormatError):
        load_public_key(APP_PRIVATE)
