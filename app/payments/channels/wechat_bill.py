"""WeChat Pay's daily trade bill (``GET /v3/bill/tradebill``): asking for it, fetching
it, and reading it.

The signed answer gives ``hash_type`` SHA1, ``hash_value`` and a ``download_url`` on
the API host. The file itself is fetched with the merchant's Authorization like any
call, but comes back unsigned: the SHA1 from the signed answer is what vouches for it.
It is UTF-8 CSV: the column header, one row per payment or refund with every field
prefixed by a backtick (so spreadsheets keep long numbers), then a summary header
(总交易单数, …) and one summary row. Times are Beijing time.

A refund row carries two amounts: 申请退款金额, what the merchant asked to refund (our
refund's amount), and 退款金额, that less what went back to recharge vouchers. A line
carries the first; the second is read only to check the summary's 退款总金额.

The column lists are the wire format, shared with the gateway emulator.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Mapping

import requests

from app.payments.channels import bill_files
from app.payments.channels.base import (
    BillKind,
    BillLine,
    BillNotReady,
    ChannelRefused,
    is_identifier,
)
from app.payments.channels.bill_files import MalformedBill
from app.payments.channels.wechat_format import parse_channel_json

TRADEBILL_PATH = "/v3/bill/tradebill"
CODE_CREATING = "STATEMENT_CREATING"  # the day's file is still being made
CODE_NO_STATEMENT = "NO_STATEMENT_EXIST"  # WeChat's word for a day without trades
FIELD_PREFIX = "`"
TRADE_STATE_REFUND = "REFUND"  # 交易状态 of a refund row
COLUMNS = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号",
    "用户标识", "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额",
    "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态",
    "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注",
)
SUMMARY_COLUMNS = (
    "总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额",
    "订单总金额", "申请退款总金额",
)
_NEEDED = ("交易时间", "商户号", "微信订单号", "商户订单号", "交易状态", "微信退款单号",
           "商户退款单号", "退款金额", "退款状态", "手续费", "订单金额", "申请退款金额")
_SUMMARY_NEEDED = ("总交易单数", "退款总金额", "手续费总金额", "申请退款总金额")
# 手续费 is what the merchant pays: positive on a payment, negative on a refund that
# gives some of it back.
_FEE_SIGNS = {BillKind.PAYMENT: 1, BillKind.REFUND: -1}
_SHA1_RE = re.compile(r"[0-9a-fA-F]{40}")
_STATES = {"SUCCESS": "succeeded", "PROCESSING": "processing"}
# Every way WeChat Pay writes that a payment or refund did not go through.
_FAILED_STATES = frozenset(
    {"FAIL", "FAILED", "CHANGE", "CLOSED", "ABNORMAL", "REFUNDCLOSE", "REVOKED", "PAYERROR"}
)


def bill_query(bill_date: date) -> dict[str, str]:
    return {"bill_date": bill_date.isoformat(), "bill_type": "ALL"}


def lines_for_refusal(refusal: ChannelRefused, bill_date: date, now: datetime) -> list[BillLine]:
    """What a refused tradebill call means: raises BillNotReady or the refusal itself,
    or returns [] for a signed NO_STATEMENT_EXIST about a day that is over (WeChat Pay
    makes no file for a day without trades). For a day not over it is not ready yet."""
    if refusal.code == CODE_CREATING:
        raise BillNotReady(f"wechat trade bill is being made: {refusal.message}")
    if refusal.code == CODE_NO_STATEMENT:
        if refusal.verified and bill_files.day_has_ended(bill_date, now):
            return []
        raise BillNotReady(f"wechat has no trade bill yet: {refusal.message}")
    raise refusal


def download_path(answer: Mapping[str, Any], api_base_url: str) -> str:
    """The path and query to sign for the file, from a verified tradebill answer.

    The address must be on our API base URL: the Authorization we send with it is for
    WeChat Pay alone.
    """
    if answer.get("hash_type") != "SHA1" or not _SHA1_RE.fullmatch(str(answer.get("hash_value"))):
        raise MalformedBill("wechat tradebill answer lacks a SHA1 hash")
    url = answer.get("download_url")
    base = api_base_url.rstrip("/")
    if not isinstance(url, str) or not url.startswith(base + "/"):
        raise MalformedBill("wechat tradebill download_url is not on the API host")
    return url[len(base):]


def fetch(
    session: requests.Session,
    url: str,
    authorization: str,
    answer: Mapping[str, Any],
    timeout: float,
) -> bytes:
    """The file at ``url``, checked against the SHA1 of the signed answer."""
    what = "wechat bill download"
    headers = {"Authorization": authorization, "Accept": "application/json"}
    fetched = bill_files.fetch_bounded(session, url, what, timeout, headers)
    if fetched.status != 200:
        try:
            error = parse_channel_json(fetched.body.decode("utf-8"))
        except ValueError:  # not UTF-8, not JSON, or JSON nested past recursion
            error = None
        error = error if isinstance(error, dict) else {}
        # Unverified: the file endpoint's errors only ever make us ask again.
        raise ChannelRefused(
            str(error.get("code") or f"HTTP_{fetched.status}"), str(error.get("message") or ""),
            verified=False,
        )
    digest = hashlib.sha1(fetched.body).hexdigest()
    if not hmac.compare_digest(digest, str(answer["hash_value"]).lower()):
        raise MalformedBill("wechat bill does not match the SHA1 of the signed answer")
    return fetched.body


def parse_bill(payload: bytes, mch_id: str) -> list[BillLine]:
    """The lines of a downloaded trade bill of merchant ``mch_id``, after checking its
    summary row agrees with them."""
    what = "wechat bill"
    try:
        text = payload.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise MalformedBill(f"{what} is not UTF-8") from None
    try:
        rows = [row for row in csv.reader(text.splitlines(), strict=True) if row]
    except csv.Error:
        raise MalformedBill(f"{what} is not CSV") from None
    starts = [index for index, row in enumerate(rows) if row[0] == SUMMARY_COLUMNS[0]]
    if not rows or len(starts) != 1 or starts[0] != len(rows) - 2:
        raise MalformedBill(f"{what}: no summary at its end")
    header, details, summary = rows[0], rows[1 : starts[0]], rows[starts[0]:]
    column = bill_files.column_index(header, _NEEDED, what)
    lines: list[BillLine] = []
    totals = dict.fromkeys(("手续费总金额", "退款总金额", "申请退款总金额"), Decimal(0))
    for number, row in enumerate(details, start=1):
        where = f"{what} row {number}"
        cells = _fields(row, len(header), where)
        if cells[column["商户号"]] != mch_id:
            raise MalformedBill(f"{where}: another merchant's row")
        line = _line(cells, column, where)
        lines.append(line)
        totals["手续费总金额"] += bill_files.signed_decimal(cells[column["手续费"]], where)
        if line.kind is BillKind.REFUND:
            totals["退款总金额"] += bill_files.signed_decimal(cells[column["退款金额"]], where)
            totals["申请退款总金额"] += bill_files.signed_decimal(cells[column["申请退款金额"]], where)
    _check_summary(summary, len(lines), totals)
    return lines


def _fields(row: list[str], width: int, what: str) -> list[str]:
    if len(row) != width:
        raise MalformedBill(f"{what}: {len(row)} fields for {width} columns")
    if not all(cell.startswith(FIELD_PREFIX) for cell in row):
        raise MalformedBill(f"{what}: a field without its backtick")
    return [cell[len(FIELD_PREFIX):] for cell in row]


def _state(text: str, what: str) -> str:
    if text in _STATES:
        return _STATES[text]
    if text in _FAILED_STATES:
        return "failed"
    raise MalformedBill(f"{what}: unknown state {text!r}")


def _line(cells: list[str], column: dict[str, int], what: str) -> BillLine:
    refund = cells[column["交易状态"]] == TRADE_STATE_REFUND
    kind = BillKind.REFUND if refund else BillKind.PAYMENT
    out_trade_no, transaction_id = cells[column["商户订单号"]], cells[column["微信订单号"]]
    if not (is_identifier(out_trade_no) and is_identifier(transaction_id)):
        raise MalformedBill(f"{what}: malformed trade numbers")
    # What we asked to refund, comparable with our refund's amount_fen; 退款金额 is
    # less by what went back to recharge vouchers.
    amount_column = "申请退款金额" if refund else "订单金额"
    amount_fen = bill_files.signed_fen(cells[column[amount_column]], what)
    if amount_fen <= 0:
        raise MalformedBill(f"{what}: {amount_column} must be positive")
    out_refund_no = refund_id = None
    if refund:
        out_refund_no, refund_id = cells[column["商户退款单号"]], cells[column["微信退款单号"]]
        if not (is_identifier(out_refund_no) and is_identifier(refund_id)):
            raise MalformedBill(f"{what}: malformed refund numbers")
    return BillLine(
        kind=kind,
        out_trade_no=out_trade_no,
        channel_trade_no=transaction_id,
        amount_fen=amount_fen,
        fee_fen=bill_files.fee_fen(cells[column["手续费"]], what, _FEE_SIGNS[kind]),
        state=_state(cells[column["退款状态" if refund else "交易状态"]], what),
        occurred_at=bill_files.bill_time(cells[column["交易时间"]], what),
        out_refund_no=out_refund_no,
        channel_refund_no=refund_id,
    )


def _check_summary(summary: list[list[str]], count: int, totals: dict[str, Decimal]) -> None:
    """The summary row must count the rows and add up their fees and refunds;
    ``totals`` is the rows' sum for each summary column named."""
    what = "wechat bill summary"
    header = summary[0]
    column = bill_files.column_index(header, _SUMMARY_NEEDED, what)
    values = _fields(summary[1], len(header), what)
    counted = bill_files.row_count(values[column["总交易单数"]], what)
    if counted != count:
        raise MalformedBill(f"{what}: counts {counted} rows, the file has {count}")
    for name, expected in totals.items():
        if bill_files.signed_decimal(values[column[name]], what) != expected:
            raise MalformedBill(f"{what}: {name} disagrees with the rows")
