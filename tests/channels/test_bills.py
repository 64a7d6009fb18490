"""Alipay's ``download_bill`` against fixed keys and hand-written bill files in Alipay's
published format; no emulator involved. Every way a bill can be wrong must end in a
ChannelError that says what, never in lines we would reconcile against. WeChat Pay's
bills are in ``test_wechat_bill``."""
from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import requests

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
from tests.channels.test_alipay import PLATFORM_KEY, make_channel

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


def patch(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new):]


def summary_with_a_short_row() -> str:
    """门店编号 second, so the short 合计 row has no cell for it."""
    summary = swap(alipay_summary(), "门店编号,门店名称,", "门店名称,门店编号,")
    return "\r\n".join("合计" if line.startswith("合计,") else line for line in summary.split("\r\n"))


GOOD_DETAIL = alipay_detail(ALIPAY_PAYMENT_ROW, ALIPAY_REFUND_ROW)
CENTRAL = GOOD_ALIPAY_ZIP.index(b"PK\x01\x02")  # the detail file's central directory entry
# Each file, and what the refusal must say (so it cannot pass for another reason).
BAD_ALIPAY_FILES: dict[str, tuple[bytes, str]] = {
    "not a zip": (b"<html>error</html>", "not a readable ZIP"),
    "a truncated zip": (GOOD_ALIPAY_ZIP[: len(GOOD_ALIPAY_ZIP) // 2], "not a readable ZIP"),
    "a zip of a version zipfile cannot read": (
        patch(GOOD_ALIPAY_ZIP, CENTRAL + 6, b"\xff\x00"), "not a readable ZIP"),
    "a zip whose files start before it": (
        GOOD_ALIPAY_ZIP[:100] + GOOD_ALIPAY_ZIP[120:], "does not decompress"),
    "a local name that is not the UTF-8 its flag says": (
        patch(GOOD_ALIPAY_ZIP, 30, b"\xff"), "does not decompress"),
    "a zip without the detail file": (empty_zip(), "must hold one 业务明细 file"),
    "not GBK": (alipay_zip(GOOD_DETAIL.encode("gbk").replace("入门".encode("gbk"), b"\x81\x20")),
                "not GBK text"),
    "a missing column": (alipay_zip(swap(GOOD_DETAIL, ",服务费（元）,", ",手续费（元）,")),
                         "missing columns 服务费（元）"),
    "a row short of cells": (alipay_zip(swap(GOOD_DETAIL, ",课程退款", "")), "row 2: 24 cells for 25"),
    "an amount that is not one": (alipay_zip(swap(GOOD_DETAIL, ",94.50,94.50,", ",94.5x,94.50,")),
                                  "not an amount: '94.5x'"),
    "a positive refund": (alipay_zip(swap(GOOD_DETAIL, ",-40.00,-40.00,", ",40.00,-40.00,")),
                          "amount 4000 has the wrong sign for refund"),
    "a payment's fee given back": (alipay_zip(swap(GOOD_DETAIL, ",-0.57,", ",0.57,")),
                                   "row 1: fee '0.57' has the wrong sign"),
    "a refund's fee charged again": (alipay_zip(swap(GOOD_DETAIL, ",0.24,", ",-0.24,")),
                                     "row 2: fee '-0.24' has the wrong sign"),
    "an unknown business type": (alipay_zip(swap(GOOD_DETAIL, ",退款\t,", ",冻结\t,")),
                                 "unknown 业务类型 '冻结'"),
    "a refund without its number": (alipay_zip(swap(GOOD_DETAIL, ",R1\t,", ",\t,")),
                                    "refund without a request number"),
    "another day's bill": (alipay_zip(alipay_detail(ALIPAY_PAYMENT_ROW, ALIPAY_REFUND_ROW,
                                                    day="2024年04月29日")), "not the bill of 2024-04-30"),
    "a header date that is no date": (
        alipay_zip(alipay_detail(ALIPAY_PAYMENT_ROW, ALIPAY_REFUND_ROW, day="2024年13月40日")),
        "起始日期 2024年13月40日 is not a date"),
    "a count that disagrees": (alipay_zip(alipay_detail(ALIPAY_PAYMENT_ROW, ALIPAY_REFUND_ROW,
                                                        refunds=2)), "refund count disagrees"),
    "a count past int's digits": (alipay_zip(swap(GOOD_DETAIL, "#退款合计：1笔", "#退款合计：" + "9" * 5000 + "笔")),
                                  "refund count: not a count"),
    "a summary whose fees disagree": (alipay_zip(GOOD_DETAIL, alipay_summary(fee="-0.57")),
                                      "合计 row disagrees"),
    "a summary row short of cells": (alipay_zip(GOOD_DETAIL, summary_with_a_short_row()),
                                     "summary row 1: 1 cells for 12 columns"),
    "a summary count in other digits": (alipay_zip(GOOD_DETAIL, swap(alipay_summary(), "合计,,1,", "合计,,１,")),
                                        "交易订单总笔数: not a count: '１'"),
    "a bad time": (alipay_zip(swap(GOOD_DETAIL, "2024-04-30 10:00:00", "2024-04-30 24:00:00")),
                   "not a time"),
}


@pytest.mark.parametrize("name", sorted(BAD_ALIPAY_FILES))
def test_a_malformed_alipay_file_is_refused_whole(name: str) -> None:
    payload, reason = BAD_ALIPAY_FILES[name]
    channel, _ = alipay_bill(payload)
    with pytest.raises(MalformedBill, match=re.escape(reason)):
        channel.download_bill(ALIPAY_DAY)


def test_an_alipay_file_over_the_size_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bill_files, "MAX_BILL_BYTES", 512)
    channel, _ = alipay_bill(GOOD_ALIPAY_ZIP + b"\x00" * 1024)
    with pytest.raises(MalformedBill, match="download: bill over 512 bytes"):
        channel.download_bill(ALIPAY_DAY)


def test_an_alipay_member_that_inflates_past_the_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A download under the limit may inflate to a file over it."""
    padded = alipay_detail(ALIPAY_PAYMENT_ROW, ALIPAY_REFUND_ROW) + "#" + " " * 200_000 + "\r\n"
    archive = alipay_zip(padded)
    monkeypatch.setattr(bill_files, "MAX_BILL_BYTES", len(archive) + 100)
    channel, _ = alipay_bill(archive)
    with pytest.raises(MalformedBill, match=r"业务明细\.csv is over \d+ bytes"):
        channel.download_bill(ALIPAY_DAY)
