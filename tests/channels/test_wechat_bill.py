"""WeChat Pay's ``download_bill`` against fixed keys and hand-written bill files in WeChat
Pay's published format; no emulator involved. Every way a bill can be wrong must end in
a ChannelError that says what, never in lines we would reconcile against. Alipay's bills
are in ``test_bills``."""
from __future__ import annotations

import hashlib
import io
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import requests
import wechatpayv3.utils as oracle
from requests.structures import CaseInsensitiveDict

from app.config import (
    EMULATOR_WECHAT_APP_ID,
    EMULATOR_WECHAT_CERT_SERIAL,
    EMULATOR_WECHAT_MCH_ID,
)
from app.payments.channels import bill_files
from app.payments.channels.base import (
    BillKind,
    BillLine,
    BillNotReady,
    ChannelRefused,
    SignatureError,
    UnknownResult,
)
from app.payments.channels.bill_files import MalformedBill
from app.payments.channels.wechat import WechatChannel
from tests.channels.test_wechat import BASE, KEYS, FakePlatform, wechat_channel

BEIJING = timezone(timedelta(hours=8))

WECHAT_DAY = date(2026, 11, 22)  # the WeChat fake's clock reads 2026-11-23 10:00 Beijing
WECHAT_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
    "费率备注"
)
MCH = EMULATOR_WECHAT_MCH_ID
APP = EMULATOR_WECHAT_APP_ID


def backticked(*fields: str) -> str:
    return ",".join("`" + field for field in fields)


WECHAT_PAYMENT = backticked(
    "2026-11-22 10:00:00", APP, MCH, "0", "", "4200001234202611220000000001", "W1", "oPayer",
    "NATIVE", "SUCCESS", "OTHERS", "CNY", "94.50", "0.00", "0", "0", "0.00", "0.00", "", "",
    "Python 入门课", "", "0.56700", "0.60%", "94.50", "0.00", "",
)
WECHAT_REFUND = backticked(
    "2026-11-22 23:59:59", APP, MCH, "0", "", "4200001234202611220000000001", "W1", "oPayer",
    "NATIVE", "REFUND", "OTHERS", "CNY", "0.00", "0.00", "50300202611220000000001000001", "WR1",
    "40.00", "0.00", "ORIGINAL", "PROCESSING", "Python 入门课", "", "-0.24000", "0.60%", "94.50",
    "40.00", "",
)
WECHAT_SUMMARY = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"


def wechat_file(*rows: str, summary: str = "`2,`94.50,`40.00,`0.00,`0.32700,`189.00,`40.00") -> bytes:
    return ("\r\n".join([WECHAT_HEADER, *rows, WECHAT_SUMMARY, summary]) + "\r\n").encode("utf-8")


GOOD_WECHAT_FILE = wechat_file(WECHAT_PAYMENT, WECHAT_REFUND)
FILE_URL = BASE + "/v3/billdownload/file?token=abc_DEF-1"


def tradebill(payload: bytes, **changes: Any) -> dict[str, Any]:
    return {"hash_type": "SHA1", "hash_value": hashlib.sha1(payload).hexdigest(),
            "download_url": FILE_URL, **changes}


class BillPlatform(FakePlatform):
    """WeChat Pay with a file server: JSON answers signed as before; files unsigned."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[Any] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if "/v3/billdownload/" not in (request.url or ""):
            return super().send(request, **kwargs)
        self.requests.append(request)
        outcome = self.files.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        status, body = outcome if isinstance(outcome, tuple) else (200, outcome)
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict({"Content-Type": "application/octet-stream"})
        response.raw = io.BytesIO(body)
        response.request = request
        response.url = request.url
        return response


@pytest.fixture
def bills() -> BillPlatform:
    return BillPlatform()


@pytest.fixture
def wechat(bills: BillPlatform) -> WechatChannel:
    session = requests.Session()
    session.mount(BASE, bills)
    session.mount("https://elsewhere.test", bills)
    return wechat_channel(session, MCH, APP)


def test_a_wechat_bill_reads_into_lines_with_their_states(wechat, bills, monkeypatch):
    bills.answer(200, tradebill(GOOD_WECHAT_FILE))
    bills.files.append(GOOD_WECHAT_FILE)
    lines = wechat.download_bill(WECHAT_DAY)
    assert lines == [
        BillLine(BillKind.PAYMENT, "W1", "4200001234202611220000000001", 9450, 57, "succeeded",
                 datetime(2026, 11, 22, 10, 0, 0, tzinfo=BEIJING)),
        BillLine(BillKind.REFUND, "W1", "4200001234202611220000000001", 4000, 24, "processing",
                 datetime(2026, 11, 22, 23, 59, 59, tzinfo=BEIJING), out_refund_no="WR1",
                 channel_refund_no="50300202611220000000001000001"),
    ]
    ask, fetch = bills.requests
    assert ask.url == BASE + "/v3/bill/tradebill?bill_date=2026-11-22&bill_type=ALL"
    # The file is fetched with our Authorization over its own path, exactly as the
    # independent implementation signs it.
    fields = dict(re.findall(r'(\w+)="([^"]*)"', fetch.headers["Authorization"]))
    monkeypatch.setattr(oracle.time, "time", lambda: int(fields["timestamp"]))
    expected = oracle.build_authorization(
        "/v3/billdownload/file?token=abc_DEF-1", "GET", MCH, EMULATOR_WECHAT_CERT_SERIAL,
        oracle.load_private_key((KEYS / "wechat_mch_private.pem").read_text()),
        nonce_str=fields["nonce_str"],
    )
    assert fetch.headers["Authorization"] == expected


@pytest.mark.parametrize(
    ("refund_state", "state"), [("SUCCESS", "succeeded"), ("PROCESSING", "processing"),
                                ("CHANGE", "failed"), ("REFUNDCLOSE", "failed")],
)
def test_wechat_refund_states_map_to_ours(wechat, bills, refund_state, state):
    payload = wechat_file(WECHAT_PAYMENT, WECHAT_REFUND.replace("`PROCESSING", f"`{refund_state}"))
    bills.answer(200, tradebill(payload))
    bills.files.append(payload)
    assert wechat.download_bill(WECHAT_DAY)[1].state == state


def test_a_wechat_file_that_does_not_match_the_signed_hash_is_refused(wechat, bills):
    bills.answer(200, tradebill(GOOD_WECHAT_FILE))
    bills.files.append(GOOD_WECHAT_FILE.replace(b"`94.50", b"`9.45"))
    with pytest.raises(MalformedBill, match="SHA1"):
        wechat.download_bill(WECHAT_DAY)


def test_a_wechat_answer_with_a_forged_signature_is_refused(wechat, bills):
    bills.answer(200, tradebill(GOOD_WECHAT_FILE))
    original = bills.send

    def forged(request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = original(request, **kwargs)
        response.raw = io.BytesIO(response.raw.read().replace(b"billdownload", b"billdownlaod"))
        return response

    bills.send = forged  # type: ignore[method-assign]
    with pytest.raises(SignatureError):
        wechat.download_bill(WECHAT_DAY)
    assert len(bills.requests) == 1


def test_a_download_url_off_the_api_host_is_never_sent_our_authorization(wechat, bills):
    bills.answer(200, tradebill(GOOD_WECHAT_FILE, download_url="https://elsewhere.test/v3/billdownload/file"))
    with pytest.raises(MalformedBill, match="API host"):
        wechat.download_bill(WECHAT_DAY)
    assert len(bills.requests) == 1


def test_statement_creating_is_not_ready(wechat, bills):
    bills.answer(400, {"code": "STATEMENT_CREATING", "message": "账单生成中"})
    with pytest.raises(BillNotReady):
        wechat.download_bill(WECHAT_DAY)


def test_no_statement_for_a_past_day_is_an_empty_bill_but_not_for_today(wechat, bills):
    """WeChat Pay makes no file for a day without trades; only a signed word about a
    day that is over is taken as "nothing happened"."""
    for _ in range(3):
        bills.answer(400, {"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"})
    assert wechat.download_bill(WECHAT_DAY) == []
    with pytest.raises(BillNotReady):
        wechat.download_bill(WECHAT_DAY + timedelta(days=1))
    bills.answers[0] = (400, {"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"}, False)
    with pytest.raises(BillNotReady):
        wechat.download_bill(WECHAT_DAY)


def test_other_wechat_refusals_and_outages(wechat, bills):
    bills.answer(400, {"code": "PARAM_ERROR", "message": "参数错误"})
    with pytest.raises(ChannelRefused):
        wechat.download_bill(WECHAT_DAY)
    bills.answer(500, {"code": "SYSTEM_ERROR", "message": "系统错误"})
    with pytest.raises(UnknownResult):
        wechat.download_bill(WECHAT_DAY)


@pytest.mark.parametrize(
    ("download", "error"),
    [(requests.ConnectionError("reset"), UnknownResult), ((503, b""), UnknownResult),
     ((400, b'{"code":"INVALID_REQUEST","message":"expired"}'), ChannelRefused),
     ((400, b"[" * 100_000), ChannelRefused)],  # an error body nested past recursion
)
def test_trouble_fetching_the_wechat_file(wechat, bills, download, error):
    bills.answer(200, tradebill(GOOD_WECHAT_FILE))
    bills.files.append(download)
    with pytest.raises(error):
        wechat.download_bill(WECHAT_DAY)


def test_a_refund_line_carries_the_amount_asked_not_the_amount_net_of_vouchers(wechat, bills):
    """申请退款金额 is what we asked to refund; 退款金额 is that less the 5.00 that went
    back to a recharge voucher. Only the first is comparable with our refund."""
    refund = WECHAT_REFUND.replace("`40.00,`0.00,`ORIGINAL", "`35.00,`5.00,`ORIGINAL")
    payload = wechat_file(WECHAT_PAYMENT, refund,
                          summary="`2,`94.50,`35.00,`5.00,`0.32700,`189.00,`40.00")
    bills.answer(200, tradebill(payload))
    bills.files.append(payload)
    assert [line.amount_fen for line in wechat.download_bill(WECHAT_DAY)] == [9450, 4000]


def summary(refunded: str = "40.00", fees: str = "0.32700", asked: str = "40.00", count: str = "2") -> str:
    return f"`{count},`94.50,`{refunded},`0.00,`{fees},`189.00,`{asked}"


# Each file, and what the refusal must say (so it cannot pass for another reason).
BAD_WECHAT_FILES: dict[str, tuple[bytes, str]] = {
    "not UTF-8": (GOOD_WECHAT_FILE.replace("入门".encode(), b"\xff\xfe"), "not UTF-8"),
    "a field without its backtick": (
        wechat_file(WECHAT_PAYMENT.replace("`NATIVE", "NATIVE"), WECHAT_REFUND), "row 1: a field without"),
    "a missing column": (GOOD_WECHAT_FILE.replace("手续费,".encode(), "服务费,".encode(), 1),
                         "missing columns 手续费"),
    "a row short of fields": (wechat_file(WECHAT_PAYMENT.rsplit(",", 1)[0], WECHAT_REFUND),
                              "row 1: 26 fields for 27 columns"),
    "an amount that is not one": (wechat_file(WECHAT_PAYMENT.replace("`94.50", "`94.5x"), WECHAT_REFUND),
                                  "row 1: not an amount: '94.5x'"),
    "an amount asked that is not one": (  # 申请退款金额, the refund row's last amount
        wechat_file(WECHAT_PAYMENT, WECHAT_REFUND.removesuffix("`40.00,`") + "`40.0x,`"),
        "row 2: not an amount: '40.0x'"),
    "a fee that is not one": (wechat_file(WECHAT_PAYMENT.replace("`0.56700", "`0.5.6"), WECHAT_REFUND),
                              "not a fee: '0.5.6'"),
    "a payment's fee given back": (
        wechat_file(WECHAT_PAYMENT.replace("`0.56700", "`-0.56700"), WECHAT_REFUND),
        "row 1: fee '-0.56700' has the wrong sign"),
    "a refund's fee charged again": (
        wechat_file(WECHAT_PAYMENT, WECHAT_REFUND.replace("`-0.24000", "`0.24000")),
        "row 2: fee '0.24000' has the wrong sign"),
    "another merchant's row": (wechat_file(WECHAT_PAYMENT.replace(f"`{MCH}", "`1900000002"), WECHAT_REFUND),
                               "another merchant's row"),
    "an unknown state": (wechat_file(WECHAT_PAYMENT.replace("`SUCCESS", "`MAYBE"), WECHAT_REFUND),
                         "unknown state 'MAYBE'"),
    "a summary that counts another number": (
        wechat_file(WECHAT_PAYMENT, WECHAT_REFUND, summary=summary(count="3")), "counts 3 rows"),
    "a summary count in other digits": (
        wechat_file(WECHAT_PAYMENT, WECHAT_REFUND, summary=summary(count="２")), "not a count: '２'"),
    "a summary whose fees disagree": (
        wechat_file(WECHAT_PAYMENT, WECHAT_REFUND, summary=summary(fees="0.56700")),
        "手续费总金额 disagrees"),
    "a summary whose refunds disagree": (
        wechat_file(WECHAT_PAYMENT, WECHAT_REFUND, summary=summary(refunded="35.00")),
        "退款总金额 disagrees"),
    "a summary whose refunds asked disagree": (
        wechat_file(WECHAT_PAYMENT, WECHAT_REFUND, summary=summary(asked="35.00")),
        "申请退款总金额 disagrees"),
    "no summary": (GOOD_WECHAT_FILE.rsplit(WECHAT_SUMMARY.encode(), 1)[0], "no summary at its end"),
    "a bad time": (wechat_file(WECHAT_PAYMENT.replace("2026-11-22 10:00:00", "2026/11/22 10:00"),
                               WECHAT_REFUND), "not a time: '2026/11/22 10:00'"),
}


@pytest.mark.parametrize("name", sorted(BAD_WECHAT_FILES))
def test_a_malformed_wechat_file_is_refused_whole(wechat, bills, name):
    payload, reason = BAD_WECHAT_FILES[name]
    bills.answer(200, tradebill(payload))
    bills.files.append(payload)
    with pytest.raises(MalformedBill, match=re.escape(reason)):
        wechat.download_bill(WECHAT_DAY)


def test_a_wechat_answer_without_a_sha1_is_refused(wechat, bills):
    bills.answer(200, tradebill(GOOD_WECHAT_FILE, hash_type="MD5"))
    with pytest.raises(MalformedBill, match="SHA1"):
        wechat.download_bill(WECHAT_DAY)


def test_a_wechat_file_over_the_size_limit_is_refused(wechat, bills, monkeypatch):
    monkeypatch.setattr(bill_files, "MAX_BILL_BYTES", 256)
    bills.answer(200, tradebill(GOOD_WECHAT_FILE))
    bills.files.append(GOOD_WECHAT_FILE)
    with pytest.raises(MalformedBill, match="download: bill over 256 bytes"):
        wechat.download_bill(WECHAT_DAY)
