"""The adapters' ``download_bill`` against fixed keys and hand-written bill files in the
channels' published formats; no emulator involved. Every way a bill can be wrong must
end in a ChannelError that says what, never in lines we would reconcile against."""
from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
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
    EMULATOR_WECHAT_PUBLIC_KEY_ID,
)
from app.payments.channels import bill_files
from app.payments.channels.alipay import AlipayChannel, signed_response_body
from app.payments.channels.base import (
    BillKind,
    BillLine,
    BillNotReady,
    ChannelRefused,
    SignatureError,
    UnknownResult,
)
from app.payments.channels.bill_files import MalformedBill
from app.payments.channels.wechat import WechatChannel, WechatSettings
from tests import wechat_oracle
from tests.channels.test_alipay import PLATFORM_KEY, make_channel
from tests.channels.test_wechat import BASE, KEYS, FakePlatform
from tests.channels.test_wechat import NOW as WECHAT_NOW

BEIJING = timezone(timedelta(hours=8))
METHOD = "alipay.data.dataservice.bill.downloadurl.query"
ALIPAY_DAY = date(2024, 4, 30)  # the Alipay fake's clock reads 2024-05-01 10:00 Beijing
ALIPAY_FILE_URL = "https://dwbillcenter.alipay.test/downloadBillFile.resource?token=t1"
ACCOUNT = "20880000000000010156"

# --- Alipay -----------------------------------------------------------------------------

ALIPAY_HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
    "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)
ALIPAY_PAYMENT_ROW = (
    "2024043022001400000001\t,A20240430000001\t,交易\t,Python 入门课,2024-04-30 09:59:00,"
    "2024-04-30 10:00:00,\t,\t,\t,\t,lea***@example.com\t,94.50,94.50,0.00,0.00,0.00,0.00,0.00,,"
    "0.00\t,0.00,\t,-0.57,0.00,"
)
ALIPAY_REFUND_ROW = (
    "2024043022001400000001\t,A20240430000001\t,退款\t,Python 入门课,2024-04-30 09:59:00,"
    "2024-04-30 23:59:59,\t,\t,\t,\t,lea***@example.com\t,-40.00,-40.00,0.00,0.00,0.00,0.00,0.00,,"
    "0.00\t,0.00,R1\t,0.24,0.00,课程退款"
)


def alipay_detail(*rows: str, day: str = "2024年04月30日", payments: int = 1, refunds: int = 1) -> str:
    lines = [
        "#支付宝业务明细查询",
        f"#账号：[{ACCOUNT}]",
        f"#起始日期：[{day} 00:00:00]   终止日期：[2024年05月01日 00:00:00]",
        "#-----------------------------------------业务明细列表----------------------------------------",
        ALIPAY_HEADER,
        *rows,
        "#-----------------------------------------业务明细列表结束------------------------------------",
        f"#交易合计：{payments}笔，商家实收共94.50元，商家优惠共0.00元",
        f"#退款合计：{refunds}笔，商家实收退款共-40.00元，商家优惠退款共0.00元",
        "#导出时间：[2024年05月01日 09:00:00]",
    ]
    return "\r\n".join(lines) + "\r\n"


def alipay_summary(payments: int = 1, refunds: int = 1, fee: str = "-0.33") -> str:
    lines = [
        "#支付宝业务汇总查询",
        f"#账号：[{ACCOUNT}]",
        "#起始日期：[2024年04月30日 00:00:00]   终止日期：[2024年05月01日 00:00:00]",
        "#-----------------------------------------业务汇总列表----------------------------------------",
        "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,"
        "商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）",
        f"合计,,{payments},{refunds},54.50,54.50,0.00,0.00,0.00,{fee},0.00,54.17",
        "#----------------------------------------业务汇总列表结束-------------------------------------",
    ]
    return "\r\n".join(lines) + "\r\n"


def alipay_zip(detail: str | bytes, summary: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        data = detail if isinstance(detail, bytes) else detail.encode("gbk")
        archive.writestr(f"{ACCOUNT}_20240430_业务明细.csv", data)
        archive.writestr(f"{ACCOUNT}_20240430_业务明细(汇总).csv", (summary or alipay_summary()).encode("gbk"))
    return buffer.getvalue()


GOOD_ALIPAY_ZIP = alipay_zip(alipay_detail(ALIPAY_PAYMENT_ROW, ALIPAY_REFUND_ROW))


def alipay_bill(download: Any, node: dict[str, str] | None = None) -> tuple[AlipayChannel, Any]:
    """An adapter whose gateway answers the download-URL call with ``node`` (signed)
    and the file address with ``download``."""
    answer = node or {"code": "10000", "msg": "Success", "bill_download_url": ALIPAY_FILE_URL}

    def reply(request: requests.PreparedRequest) -> Any:
        if request.method == "POST":
            return signed_response_body(METHOD, answer, PLATFORM_KEY)
        return download

    return make_channel(reply)


def test_an_alipay_bill_reads_into_lines_in_fen_and_beijing_time() -> None:
    channel, gateway = alipay_bill(GOOD_ALIPAY_ZIP)
    lines = channel.download_bill(ALIPAY_DAY)
    assert lines == [
        BillLine(BillKind.PAYMENT, "A20240430000001", "2024043022001400000001", 9450, 57,
                 "succeeded", datetime(2024, 4, 30, 10, 0, 0, tzinfo=BEIJING)),
        BillLine(BillKind.REFUND, "A20240430000001", "2024043022001400000001", 4000, 24,
                 "succeeded", datetime(2024, 4, 30, 23, 59, 59, tzinfo=BEIJING), out_refund_no="R1"),
    ]
    assert all(line.occurred_at.utcoffset() == timedelta(hours=8) for line in lines)
    form = gateway.forms[0]
    assert form["method"] == METHOD
    assert json.loads(form["biz_content"]) == {"bill_type": "trade", "bill_date": "2024-04-30"}


def test_alipay_zip_member_names_in_gbk_without_the_utf8_flag_are_found() -> None:
    """Alipay's archives name their files in GBK and do not set ZIP's UTF-8 flag."""

    class GbkName(zipfile.ZipInfo):
        def _encodeFilenameFlags(self) -> tuple[bytes, int]:
            return self.filename.encode("gbk"), self.flag_bits & ~0x800

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(GbkName(f"{ACCOUNT}_20240430_业务明细.csv"),
                         alipay_detail(ALIPAY_PAYMENT_ROW, refunds=0).encode("gbk"))
    channel, _ = alipay_bill(buffer.getvalue())
    assert [line.kind for line in channel.download_bill(ALIPAY_DAY)] == [BillKind.PAYMENT]


def test_an_alipay_day_without_trades_reads_as_no_lines() -> None:
    channel, _ = alipay_bill(alipay_zip(alipay_detail(payments=0, refunds=0),
                                        alipay_summary(0, 0, "0.00")))
    assert channel.download_bill(ALIPAY_DAY) == []


def test_alipays_bill_not_exist_is_not_ready() -> None:
    refusal = {"code": "40004", "msg": "Business Failed", "sub_code": "isp.bill_not_exist",
               "sub_msg": "账单不存在"}
    channel, gateway = alipay_bill(b"", refusal)
    with pytest.raises(BillNotReady):
        channel.download_bill(ALIPAY_DAY)
    assert len(gateway.forms) == 1  # nothing downloaded


def test_another_alipay_refusal_stays_a_refusal() -> None:
    refusal = {"code": "40004", "msg": "Business Failed", "sub_code": "isv.invalid_arguments",
               "sub_msg": "参数不合法"}
    channel, _ = alipay_bill(b"", refusal)
    with pytest.raises(ChannelRefused) as caught:
        channel.download_bill(ALIPAY_DAY)
    assert caught.value.code == "isv.invalid_arguments" and caught.value.verified


def test_a_tampered_alipay_answer_is_a_signature_error() -> None:
    def reply(request: requests.PreparedRequest) -> Any:
        body = signed_response_body(
            METHOD, {"code": "10000", "msg": "Success", "bill_download_url": ALIPAY_FILE_URL}, PLATFORM_KEY
        )
        return body.replace("token=t1", "token=t2")

    channel, gateway = make_channel(reply)
    with pytest.raises(SignatureError):
        channel.download_bill(ALIPAY_DAY)
    assert len(gateway.forms) == 1  # the address of a forged answer is never fetched


@pytest.mark.parametrize(
    "download",
    [requests.ConnectionError("reset"), requests.ReadTimeout("slow"), (502, "Bad Gateway"),
     (404, "下载超时，请重新下载")],
)
def test_trouble_fetching_the_alipay_file_is_an_unknown_result(download: Any) -> None:
    channel, _ = alipay_bill(download)
    with pytest.raises(UnknownResult):
        channel.download_bill(ALIPAY_DAY)


def swap(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


def empty_zip() -> bytes:
    buffer = io.BytesIO()
    zipfile.ZipFile(buffer, "w").close()
    return buffer.getvalue()


GOOD_DETAIL = alipay_detail(ALIPAY_PAYMENT_ROW, ALIPAY_REFUND_ROW)
BAD_ALIPAY_FILES = {
    "not a zip": b"<html>error</html>",
    "a truncated zip": GOOD_ALIPAY_ZIP[: len(GOOD_ALIPAY_ZIP) // 2],
    "a zip without the detail file": empty_zip(),
    "not GBK": alipay_zip(GOOD_DETAIL.encode("gbk").replace("入门".encode("gbk"), b"\x81\x20")),
    "a missing column": alipay_zip(swap(GOOD_DETAIL, ",服务费（元）,", ",手续费（元）,")),
    "a row short of cells": alipay_zip(swap(GOOD_DETAIL, ",课程退款", "")),
    "an amount that is not one": alipay_zip(swap(GOOD_DETAIL, ",94.50,94.50,", ",94.5x,94.50,")),
    "a positive refund": alipay_zip(swap(GOOD_DETAIL, ",-40.00,-40.00,", ",40.00,-40.00,")),
    "an unknown business type": alipay_zip(swap(GOOD_DETAIL, ",退款\t,", ",冻结\t,")),
    "a refund without its number": alipay_zip(swap(GOOD_DETAIL, ",R1\t,", ",\t,")),
    "another day's bill": alipay_zip(alipay_detail(ALIPAY_PAYMENT_ROW, ALIPAY_REFUND_ROW,
                                                   day="2024年04月29日")),
    "a count that disagrees": alipay_zip(alipay_detail(ALIPAY_PAYMENT_ROW, ALIPAY_REFUND_ROW,
                                                       refunds=2)),
    "a summary whose fees disagree": alipay_zip(GOOD_DETAIL, alipay_summary(fee="-0.57")),
    "a bad time": alipay_zip(swap(GOOD_DETAIL, "2024-04-30 10:00:00", "2024-04-30 24:00:00")),
}
@pytest.mark.parametrize("name", sorted(BAD_ALIPAY_FILES))
def test_a_malformed_alipay_file_is_refused_whole(name: str) -> None:
    channel, _ = alipay_bill(BAD_ALIPAY_FILES[name])
    with pytest.raises(MalformedBill):
        channel.download_bill(ALIPAY_DAY)


def test_an_alipay_file_over_the_size_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bill_files, "MAX_BILL_BYTES", 512)
    channel, _ = alipay_bill(GOOD_ALIPAY_ZIP + b"\x00" * 1024)
    with pytest.raises(MalformedBill, match="over"):
        channel.download_bill(ALIPAY_DAY)


def test_an_alipay_member_that_inflates_past_the_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A download under the limit may inflate to a file over it."""
    padded = alipay_detail(ALIPAY_PAYMENT_ROW, ALIPAY_REFUND_ROW) + "#" + " " * 200_000 + "\r\n"
    archive = alipay_zip(padded)
    monkeypatch.setattr(bill_files, "MAX_BILL_BYTES", len(archive) + 100)
    channel, _ = alipay_bill(archive)
    with pytest.raises(MalformedBill, match="over"):
        channel.download_bill(ALIPAY_DAY)


# --- WeChat Pay --------------------------------------------------------------------------

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
    settings = WechatSettings(
        mch_id=MCH,
        app_id=APP,
        merchant_private_key_pem=(KEYS / "wechat_mch_private.pem").read_text(),
        merchant_cert_serial=EMULATOR_WECHAT_CERT_SERIAL,
        apiv3_key=wechat_oracle.APIV3_KEY,
        platform_public_key_pem=(KEYS / "wechat_platform_public.pem").read_text(),
        platform_public_key_id=EMULATOR_WECHAT_PUBLIC_KEY_ID,
        api_base_url=BASE,
    )
    return WechatChannel(settings, session, clock=lambda: WECHAT_NOW)


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
     ((400, b'{"code":"INVALID_REQUEST","message":"expired"}'), ChannelRefused)],
)
def test_trouble_fetching_the_wechat_file(wechat, bills, download, error):
    bills.answer(200, tradebill(GOOD_WECHAT_FILE))
    bills.files.append(download)
    with pytest.raises(error):
        wechat.download_bill(WECHAT_DAY)


BAD_WECHAT_FILES: dict[str, bytes] = {
    "not UTF-8": GOOD_WECHAT_FILE.replace("入门".encode(), b"\xff\xfe"),
    "a field without its backtick": wechat_file(WECHAT_PAYMENT.replace("`NATIVE", "NATIVE"),
                                                WECHAT_REFUND),
    "a missing column": GOOD_WECHAT_FILE.replace("手续费,".encode(), "服务费,".encode(), 1),
    "a row short of fields": wechat_file(WECHAT_PAYMENT.rsplit(",", 1)[0], WECHAT_REFUND),
    "an amount that is not one": wechat_file(WECHAT_PAYMENT.replace("`94.50", "`94,5"), WECHAT_REFUND),
    "a fee that is not one": wechat_file(WECHAT_PAYMENT.replace("`0.56700", "`0.5.6"), WECHAT_REFUND),
    "another merchant's row": wechat_file(WECHAT_PAYMENT.replace(f"`{MCH}", "`1900000002"),
                                          WECHAT_REFUND),
    "an unknown state": wechat_file(WECHAT_PAYMENT.replace("`SUCCESS", "`MAYBE"), WECHAT_REFUND),
    "a summary that counts another number": wechat_file(
        WECHAT_PAYMENT, WECHAT_REFUND, summary="`3,`94.50,`40.00,`0.00,`0.32700,`189.00,`40.00"),
    "a summary whose fees disagree": wechat_file(
        WECHAT_PAYMENT, WECHAT_REFUND, summary="`2,`94.50,`40.00,`0.00,`0.56700,`189.00,`40.00"),
    "no summary": GOOD_WECHAT_FILE.rsplit(WECHAT_SUMMARY.encode(), 1)[0],
    "a bad time": wechat_file(WECHAT_PAYMENT.replace("2026-11-22 10:00:00", "2026/11/22 10:00"),
                              WECHAT_REFUND),
}


@pytest.mark.parametrize("name", sorted(BAD_WECHAT_FILES))
def test_a_malformed_wechat_file_is_refused_whole(wechat, bills, name):
    payload = BAD_WECHAT_FILES[name]
    bills.answer(200, tradebill(payload))
    bills.files.append(payload)
    with pytest.raises(MalformedBill):
        wechat.download_bill(WECHAT_DAY)


def test_a_wechat_answer_without_a_sha1_is_refused(wechat, bills):
    bills.answer(200, tradebill(GOOD_WECHAT_FILE, hash_type="MD5"))
    with pytest.raises(MalformedBill, match="SHA1"):
        wechat.download_bill(WECHAT_DAY)


def test_a_wechat_file_over_the_size_limit_is_refused(wechat, bills, monkeypatch):
    monkeypatch.setattr(bill_files, "MAX_BILL_BYTES", 256)
    bills.answer(200, tradebill(GOOD_WECHAT_FILE))
    bills.files.append(GOOD_WECHAT_FILE)
    with pytest.raises(MalformedBill, match="over"):
        wechat.download_bill(WECHAT_DAY)
