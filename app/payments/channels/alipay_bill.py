"""Alipay's daily trade bill (``bill_type`` trade): asking for it, and reading it.

``alipay.data.dataservice.bill.downloadurl.query`` answers, signed, a
``bill_download_url`` that lives 30 seconds; that URL serves a ZIP holding two GBK CSV
files, the detail ``<pid>0156_<yyyymmdd>_业务明细.csv`` and its summary
``…_业务明细(汇总).csv``. The detail file opens with ``#`` comment lines (account,
the day's bounds), then the column header, one row per payment (业务类型 交易) or
refund (退款, its amounts negative), a closing ``#`` line and the day's counts. Times
are Beijing time; Alipay pads identifiers with a tab so spreadsheets keep their digits.

The column lists and markers are the wire format, shared with the gateway emulator.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Mapping

import requests

from app.payments.channels import bill_files
from app.payments.channels.base import (
    BillKind,
    BillLine,
    BillNotReady,
    ChannelError,
    ChannelRefused,
    UnknownResult,
    is_identifier,
)
from app.payments.channels.bill_files import MalformedBill

METHOD = "alipay.data.dataservice.bill.downloadurl.query"
SUB_CODE_BILL_NOT_EXIST = "isp.bill_not_exist"
DETAIL_SUFFIX = "_业务明细.csv"
SUMMARY_SUFFIX = "_业务明细(汇总).csv"
KIND_PAYMENT = "交易"
KIND_REFUND = "退款"
DETAIL_COLUMNS = (
    "支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间",
    "门店编号", "门店名称", "操作员", "终端号", "对方账户", "订单金额（元）",
    "商家实收（元）", "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）",
    "商家优惠（元）", "券核销金额（元）", "券名称", "商家红包消费金额（元）",
    "卡消费金额（元）", "退款批次号/请求号", "服务费（元）", "分润（元）", "备注",
)
SUMMARY_COLUMNS = (
    "门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）",
    "商家实收（元）", "支付宝优惠（元）", "商家优惠（元）", "卡消费金额（元）",
    "服务费（元）", "分润（元）", "实收净额（元）",
)
SUMMARY_TOTAL_ROW = "合计"
# What we read; the rest of DETAIL_COLUMNS is carried for the people who open the file.
_DETAIL_NEEDED = ("支付宝交易号", "商户订单号", "业务类型", "完成时间", "订单金额（元）",
                  "退款批次号/请求号", "服务费（元）")
_SUMMARY_NEEDED = ("门店编号", "交易订单总笔数", "退款订单总笔数", "服务费（元）")
_START_RE = re.compile(r"起始日期：\[([0-9]{4})年([0-9]{2})月([0-9]{2})日")
_PAYMENT_COUNT_RE = re.compile(r"^#交易合计：([0-9]+)笔")
_REFUND_COUNT_RE = re.compile(r"^#退款合计：([0-9]+)笔")
# 服务费 as Alipay writes it, from the merchant's side: negative where a payment is
# charged its fee, positive where a refund gives some of it back.
_FEE_SIGNS = {BillKind.PAYMENT: -1, BillKind.REFUND: 1}


def biz_content(bill_date: date) -> dict[str, str]:
    return {"bill_type": "trade", "bill_date": bill_date.isoformat()}


def refusal_error(refusal: ChannelRefused) -> ChannelError:
    """What a refused download-URL call means for the caller: Alipay's "no bill"
    (not cut yet) is BillNotReady; anything else stays the refusal it is."""
    if refusal.code == SUB_CODE_BILL_NOT_EXIST:
        return BillNotReady(f"alipay has no trade bill yet: {refusal.message}")
    return refusal


def download(
    session: requests.Session, node: Mapping[str, Any], bill_date: date, timeout: float
) -> list[BillLine]:
    """Fetch the ZIP that a verified download-URL answer names and read it."""
    url = node.get("bill_download_url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise MalformedBill("alipay bill answer has no bill_download_url")
    fetched = bill_files.fetch_bounded(session, url, "alipay bill download", timeout)
    if fetched.status != 200:
        # An expired or already used address: a fresh one is asked for on the next try.
        raise UnknownResult(f"alipay bill download: HTTP {fetched.status}")
    return parse_archive(fetched.body, bill_date)


def parse_archive(payload: bytes, bill_date: date) -> list[BillLine]:
    """The lines of a downloaded bill ZIP, after checking it hangs together."""
    try:
        # Alipay writes the Chinese member names in GBK without ZIP's UTF-8 flag.
        archive = zipfile.ZipFile(io.BytesIO(payload), metadata_encoding="gb18030")
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, NotImplementedError):
        # ValueError includes UnicodeDecodeError; NotImplementedError is a version or
        # feature zipfile does not read.
        raise MalformedBill("alipay bill is not a readable ZIP") from None
    with archive:
        details = [info for info in archive.infolist() if info.filename.endswith(DETAIL_SUFFIX)]
        summaries = [info for info in archive.infolist() if info.filename.endswith(SUMMARY_SUFFIX)]
        if len(details) != 1 or len(summaries) > 1:
            raise MalformedBill("alipay bill ZIP must hold one 业务明细 file and at most one summary")
        detail = _parse_detail(_member_text(archive, details[0]), bill_date)
        if summaries:
            _check_summary(_member_text(archive, summaries[0]), detail)
    return detail.lines


def _member_text(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    limit = bill_files.MAX_BILL_BYTES
    if info.file_size > limit:
        raise MalformedBill(f"alipay bill file {info.filename} is over {limit} bytes")
    try:
        with archive.open(info) as member:
            raw = member.read(limit + 1)  # the declared size may lie
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError,
            ValueError):
        # ValueError: a local header that seeks before the file's start, or whose name
        # is not the UTF-8 its flag claims.
        raise MalformedBill(f"alipay bill file {info.filename} does not decompress") from None
    if len(raw) > limit:
        raise MalformedBill(f"alipay bill file {info.filename} is over {limit} bytes")
    try:
        # GB18030 reads every GBK byte sequence, and the few characters GBK lacks.
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        raise MalformedBill(f"alipay bill file {info.filename} is not GBK text") from None


@dataclass
class _Detail:
    """The detail file's lines, and the sum of its 服务费 as written (for the summary)."""

    lines: list[BillLine] = field(default_factory=list)
    fee_total: Decimal = Decimal(0)


def _table(text: str, what: str) -> tuple[list[str], list[list[str]], list[str]]:
    """(column header, data rows, ``#`` comment lines), cells stripped of Alipay's tabs."""
    lines = text.splitlines()
    comments = [line for line in lines if line.startswith("#")]
    data = [line for line in lines if line.strip() and not line.startswith("#")]
    if not data:
        raise MalformedBill(f"{what}: no column header")
    try:
        rows = [[cell.strip() for cell in row] for row in csv.reader(data, strict=True)]
    except csv.Error:
        raise MalformedBill(f"{what}: not CSV") from None
    return rows[0], rows[1:], comments


def _parse_detail(text: str, bill_date: date) -> _Detail:
    what = "alipay bill 业务明细"
    header, rows, comments = _table(text, what)
    column = bill_files.column_index(header, _DETAIL_NEEDED, what)
    starts = [match for line in comments if (match := _START_RE.search(line))]
    if len(starts) != 1:
        raise MalformedBill(f"{what}: no single 起始日期 in its header")
    if _start_date(starts[0], what) != bill_date:
        raise MalformedBill(f"{what}: not the bill of {bill_date.isoformat()}")
    detail = _Detail()
    for number, cells in enumerate(_full_rows(rows, len(header), what), start=1):
        detail.lines.append(_line(cells, column, f"{what} row {number}"))
        detail.fee_total += bill_files.signed_decimal(cells[column["服务费（元）"]], what)
    counted = {BillKind.PAYMENT: _PAYMENT_COUNT_RE, BillKind.REFUND: _REFUND_COUNT_RE}
    for kind, pattern in counted.items():
        for match in filter(None, (pattern.match(line) for line in comments)):
            count = bill_files.row_count(match.group(1), f"{what} {kind.value} count")
            if count != sum(line.kind is kind for line in detail.lines):
                raise MalformedBill(f"{what}: its {kind.value} count disagrees with its rows")
    return detail


def _start_date(match: re.Match[str], what: str) -> date:
    year, month, day = match.groups()
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        raise MalformedBill(f"{what}: 起始日期 {year}年{month}月{day}日 is not a date") from None


def _full_rows(rows: list[list[str]], width: int, what: str) -> list[list[str]]:
    """``rows``, each checked to have a cell for every one of the ``width`` columns."""
    for number, cells in enumerate(rows, start=1):
        if len(cells) != width:
            raise MalformedBill(f"{what} row {number}: {len(cells)} cells for {width} columns")
    return rows


def _line(cells: list[str], column: dict[str, int], what: str) -> BillLine:
    kind = {KIND_PAYMENT: BillKind.PAYMENT, KIND_REFUND: BillKind.REFUND}.get(cells[column["业务类型"]])
    if kind is None:
        raise MalformedBill(f"{what}: unknown 业务类型 {cells[column['业务类型']]!r}")
    out_trade_no, trade_no = cells[column["商户订单号"]], cells[column["支付宝交易号"]]
    if not (is_identifier(out_trade_no) and is_identifier(trade_no)):
        raise MalformedBill(f"{what}: malformed trade numbers")
    amount_fen = bill_files.signed_fen(cells[column["订单金额（元）"]], what)
    # A payment brings money in, a refund sends it back: the sign must say which.
    wrong_sign = amount_fen <= 0 if kind is BillKind.PAYMENT else amount_fen >= 0
    if wrong_sign:
        raise MalformedBill(f"{what}: amount {amount_fen} has the wrong sign for {kind.value}")
    out_refund_no = None
    if kind is BillKind.REFUND:
        out_refund_no = cells[column["退款批次号/请求号"]]
        if not is_identifier(out_refund_no):
            raise MalformedBill(f"{what}: refund without a request number")
    return BillLine(
        kind=kind,
        out_trade_no=out_trade_no,
        channel_trade_no=trade_no,
        amount_fen=abs(amount_fen),
        fee_fen=bill_files.fee_fen(cells[column["服务费（元）"]], what, _FEE_SIGNS[kind]),
        state="succeeded",  # Alipay's trade bill lists completed payments and refunds only
        occurred_at=bill_files.bill_time(cells[column["完成时间"]], what),
        out_refund_no=out_refund_no,
        channel_refund_no=None,  # Alipay numbers a refund by our out_request_no alone
    )


def _check_summary(text: str, detail: _Detail) -> None:
    """The summary's 合计 row must count the detail's rows and add up its fees."""
    what = "alipay bill summary"
    header, rows, _ = _table(text, what)
    column = bill_files.column_index(header, _SUMMARY_NEEDED, what)
    totals = [cells for cells in _full_rows(rows, len(header), what)
              if cells[column["门店编号"]] == SUMMARY_TOTAL_ROW]
    if len(totals) != 1:
        raise MalformedBill(f"{what}: no single {SUMMARY_TOTAL_ROW} row")
    total = totals[0]
    payments = bill_files.row_count(total[column["交易订单总笔数"]], f"{what} 交易订单总笔数")
    refunds = bill_files.row_count(total[column["退款订单总笔数"]], f"{what} 退款订单总笔数")
    expected = (
        sum(line.kind is BillKind.PAYMENT for line in detail.lines),
        sum(line.kind is BillKind.REFUND for line in detail.lines),
        detail.fee_total,
    )
    found = (payments, refunds, bill_files.signed_decimal(total[column["服务费（元）"]], what))
    if found != expected:
        raise MalformedBill(f"{what}: {SUMMARY_TOTAL_ROW} row disagrees with the detail file")
