"""The WeChat Pay v3 adapter against WeChat's published algorithms, checked by an
independent implementation (wechatpayv3) and fixed keys; no emulator involved."""
from __future__ import annotations

import io
import json
import re
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
import wechatpayv3.utils as oracle
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from app.config import (
    EMULATOR_WECHAT_APP_ID,
    EMULATOR_WECHAT_CERT_SERIAL,
    EMULATOR_WECHAT_MCH_ID,
    EMULATOR_WECHAT_PUBLIC_KEY_ID,
)
from app.payments.channels.base import (
    ChannelRefused,
    ChargeRequest,
    RefundRequest,
    RefundState,
    SignatureError,
    TradeState,
    UnknownResult,
)
from app.payments.channels.wechat import WechatChannel, WechatSettings
from tests import wechat_oracle

KEYS = wechat_oracle.KEYS
NOW = datetime(2026, 11, 23, 2, 0, 0, tzinfo=timezone.utc)
BASE = "https://api.mch.weixin.qq.com"


class FakePlatform(BaseAdapter):
    """Plays WeChat Pay's server: records requests, answers signed by the oracle."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[requests.PreparedRequest] = []
        self.answers: list[tuple[int, Any, bool]] = []

    def answer(self, status: int, body: Any = None, signed: bool = True) -> None:
        self.answers.append((status, body, signed))

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        self.requests.append(request)
        status, body, signed = self.answers.pop(0)
        text = "" if body is None else json.dumps(body, ensure_ascii=False)
        headers = wechat_oracle.signed_headers(text, NOW.replace(tzinfo=None)) if signed else {}
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
        response.raw = io.BytesIO(text.encode())
        response.request = request
        response.url = request.url
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def platform() -> FakePlatform:
    return FakePlatform()


def wechat_channel(session: requests.Session, mch_id: str = EMULATOR_WECHAT_MCH_ID,
                   app_id: str = EMULATOR_WECHAT_APP_ID) -> WechatChannel:
    """The adapter with the committed test keys, talking through ``session`` at NOW."""
    settings = WechatSettings(
        mch_id=mch_id,
        app_id=app_id,
        merchant_private_key_pem=(KEYS / "wechat_mch_private.pem").read_text(),
        merchant_cert_serial=EMULATOR_WECHAT_CERT_SERIAL,
        apiv3_key=wechat_oracle.APIV3_KEY,
        platform_public_key_pem=(KEYS / "wechat_platform_public.pem").read_text(),
        platform_public_key_id=EMULATOR_WECHAT_PUBLIC_KEY_ID,
        api_base_url=BASE,
    )
    return WechatChannel(settings, session, clock=lambda: NOW)


@pytest.fixture
def channel(platform: FakePlatform) -> WechatChannel:
    session = requests.Session()
    session.mount(BASE, platform)
    return wechat_channel(session)


def charge() -> ChargeRequest:
    return ChargeRequest(
        out_trade_no="CC20261123100000123456P01",
        amount_fen=9450,
        subject="Python 入门",
        expires_at=datetime(2026, 11, 23, 2, 15, 0, tzinfo=timezone.utc),
        notify_url="https://pay.example.com/notify/wechat",
    )


def authorization_fields(header: str) -> dict[str, str]:
    assert header.startswith("WECHATPAY2-SHA256-RSA2048 ")
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def test_request_signature_is_what_the_independent_implementation_computes(
    channel, platform, monkeypatch
):
    platform.answer(200, {"code_url": "weixin://wxpay/bizpayurl?pr=abc"})
    channel.precreate(charge())
    sent = platform.requests[0]
    ours = sent.headers["Authorization"]
    fields = authorization_fields(ours)
    # RSA PKCS#1 v1.5 is deterministic: the oracle, given our nonce and timestamp,
    # must produce exactly our header.
    monkeypatch.setattr(oracle.time, "time", lambda: int(fields["timestamp"]))
    expected = oracle.build_authorization(
        "/v3/pay/transactions/native", "POST", EMULATOR_WECHAT_MCH_ID, EMULATOR_WECHAT_CERT_SERIAL,
        oracle.load_private_key((KEYS / "wechat_mch_private.pem").read_text()),
        data=sent.body.decode(), nonce_str=fields["nonce_str"],
    )
    assert ours == expected
    assert fields["timestamp"] == str(int(NOW.timestamp()))


def test_native_pay_sends_the_order_deadline_and_amount_in_fen(channel, platform):
    platform.answer(200, {"code_url": "weixin://wxpay/bizpayurl?pr=abc"})
    intent = channel.precreate(charge())
    body = json.loads(platform.requests[0].body)
    assert intent.qr_code == "weixin://wxpay/bizpayurl?pr=abc"
    assert body["time_expire"] == "2026-11-23T10:15:00+08:00"
    assert body["amount"] == {"total": 9450, "currency": "CNY"}
    assert (body["mchid"], body["appid"]) == (EMULATOR_WECHAT_MCH_ID, EMULATOR_WECHAT_APP_ID)
    assert platform.requests[0].url == BASE + "/v3/pay/transactions/native"


def test_a_query_is_a_signed_get_with_the_mchid(channel, platform, monkeypatch):
    platform.answer(200, wechat_oracle.transaction("CC1P01", 9450))
    status = channel.query("CC1P01")
    sent = platform.requests[0]
    assert sent.url == BASE + f"/v3/pay/transactions/out-trade-no/CC1P01?mchid={EMULATOR_WECHAT_MCH_ID}"
    fields = authorization_fields(sent.headers["Authorization"])
    monkeypatch.setattr(oracle.time, "time", lambda: int(fields["timestamp"]))
    expected = oracle.build_authorization(
        f"/v3/pay/transactions/out-trade-no/CC1P01?mchid={EMULATOR_WECHAT_MCH_ID}", "GET",
        EMULATOR_WECHAT_MCH_ID, EMULATOR_WECHAT_CERT_SERIAL,
        oracle.load_private_key((KEYS / "wechat_mch_private.pem").read_text()),
        nonce_str=fields["nonce_str"],
    )
    assert sent.headers["Authorization"] == expected
    assert (status.state, status.amount_fen) == (TradeState.PAID, 9450)
    assert status.channel_trade_no == "4200002026112300000000000001"


@pytest.mark.parametrize(
    ("trade_state", "expected"),
    [("NOTPAY", TradeState.PENDING), ("USERPAYING", TradeState.PENDING),
     ("CLOSED", TradeState.CLOSED), ("REVOKED", TradeState.CLOSED), ("REFUND", TradeState.PAID)],
)
def test_trade_states_map_to_ours(channel, platform, trade_state, expected):
    platform.answer(200, wechat_oracle.transaction("CC1P01", 9450, trade_state=trade_state))
    assert channel.query("CC1P01").state is expected


@pytest.mark.parametrize(("trade_state", "refunded"), [("REFUND", True), ("SUCCESS", False)])
def test_a_trade_in_refund_is_paid_and_says_money_went_back(channel, platform, trade_state, refunded):
    """转入退款: the payment did arrive (PAID), and some of it has gone back since."""
    platform.answer(200, wechat_oracle.transaction("CC1P01", 9450, trade_state=trade_state))
    status = channel.query("CC1P01")
    assert (status.state, status.refunded, status.amount_fen) == (TradeState.PAID, refunded, 9450)


def test_an_unknown_order_is_not_found_only_when_the_answer_is_signed(channel, platform):
    platform.answer(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
    assert channel.query("CC1P01").state is TradeState.NOT_FOUND
    platform.answer(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}, signed=False)
    with pytest.raises(ChannelRefused) as refused:
        channel.query("CC1P01")
    assert refused.value.verified is False


def test_a_refusal_with_a_forged_signature_is_a_signature_error(channel, platform):
    platform.answer(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}, signed=False)
    original_send = platform.send

    def forged(request, **kwargs):
        response = original_send(request, **kwargs)
        response.headers.update(wechat_oracle.signed_headers("something else", NOW.replace(tzinfo=None)))
        return response

    platform.send = forged  # type: ignore[method-assign]
    with pytest.raises(SignatureError):
        channel.query("CC1P01")


def test_an_answer_for_another_merchant_is_not_believed(channel, platform):
    platform.answer(200, wechat_oracle.transaction("CC1P01", 9450, mchid="1900000999"))
    with pytest.raises(UnknownResult):
        channel.query("CC1P01")


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_are_unknown_results(channel, platform, status):
    platform.answer(status, {"code": "SYSTEM_ERROR", "message": "系统错误"})
    with pytest.raises(UnknownResult):
        channel.query("CC1P01")


def test_an_unsigned_success_is_refused(channel, platform):
    platform.answer(200, {"code_url": "weixin://evil"}, signed=False)
    with pytest.raises(SignatureError):
        channel.precreate(charge())


def test_close_answers_204_and_a_paid_trade_refuses(channel, platform):
    platform.answer(204)
    assert channel.close("CC1P01") is TradeState.CLOSED
    assert json.loads(platform.requests[0].body) == {"mchid": EMULATOR_WECHAT_MCH_ID}
    platform.answer(400, {"code": "ORDERPAID", "message": "订单已支付"})
    with pytest.raises(ChannelRefused) as refused:
        channel.close("CC1P01")
    assert refused.value.code == "ORDERPAID"


def test_a_refund_restates_the_total_and_reads_the_status(channel, platform):
    answer = {
        "refund_id": "50000000382019052709732678859", "out_refund_no": "CC1P01R01",
        "transaction_id": "4200002026112300000000000001", "out_trade_no": "CC1P01",
        "status": "PROCESSING", "create_time": "2026-11-23T10:00:00+08:00",
        "amount": {"total": 9450, "refund": 9450, "currency": "CNY"},
    }
    platform.answer(200, answer)
    result = channel.refund(RefundRequest("CC1P01", "CC1P01R01", 9450, 9450, "orphan payment"))
    body = json.loads(platform.requests[0].body)
    assert body["amount"] == {"refund": 9450, "total": 9450, "currency": "CNY"}
    assert (result.state, result.amount_fen) == (RefundState.PROCESSING, 9450)
    platform.answer(200, {**answer, "status": "SUCCESS", "success_time": "2026-11-23T10:00:05+08:00"})
    done = channel.query_refund("CC1P01", "CC1P01R01")
    assert done is not None and done.state is RefundState.SUCCEEDED
    platform.answer(404, {"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"})
    assert channel.query_refund("CC1P01", "CC1P01R02") is None
