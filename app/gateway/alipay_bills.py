"""The emulated Alipay's daily trade bill, built from the emulator's own books.

``alipay.data.dataservice.bill.downloadurl.query`` (see ``alipay_api``) hands out a
30-second address; it serves the ZIP built here, as Alipay ships it: GBK CSV files
whose Chinese names are GBK too (no UTF-8 flag), the detail ``…_业务明细.csv`` with
its ``#`` comment lines, tab-padded identifiers, payments as 交易 and refunds as 退款
with negative amounts, and the summary ``…_业务明细(汇总).csv``. The fee is written
as Alipay's 服务费: negative where the merchant pays it, positive where a refund gives
some back.
"""
from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select

from app.extensions import db
from app.gateway.bills import BillDay, fee_bps, one_line, payment_fee, refund_fees
from app.gateway.models import GatewayAlipayRefund, GatewayAlipayTrade
from app.money import format_yuan
from app.payments.channels.alipay import format_beijing_time
from app.payments.channels.alipay_bill import (
    DETAIL_COLUMNS,
    DETAIL_SUFFIX,
    KIND_PAYMENT,
    KIND_REFUND,
    SUMMARY_COLUMNS,
    SUMMARY_SUFFIX,
    SUMMARY_TOTAL_ROW,
)
from app.timeutil import as_aware, beijing, now

# Alipay's download addresses die after 30 seconds.
URL_LIFETIME = timedelta(seconds=30)
_ACCOUNT_SUFFIX = "0156"  # Alipay's bill account: the merchant PID and these four digits
_RULE = "-----------------------------------------"
_UTF8_NAME_FLAG = 0x800


@dataclass(frozen=True)
class AlipayBillRow:
    """One row of the detail file: amounts signed as Alipay writes them."""

    trade: GatewayAlipayTrade
    refund: GatewayAlipayRefund | None
    amount_fen: int  # negative for a refund
    fee_fen: int  # 服务费: negative for a payment's fee, positive for a fee given back
    completed_at: datetime  # naive UTC


def bill_account(seller_id: str) -> str:
    return seller_id + _ACCOUNT_SUFFIX


def archive_name(seller_id: str, bill_date: date) -> str:
    return f"{bill_account(seller_id)}_{bill_date:%Y%m%d}.csv.zip"


def bill_rows(app_id: str, bill_date: date) -> list[AlipayBillRow]:
    """Every trade of ``app_id`` paid on the Beijing day and every refund completed on
    it, in the order they completed."""
    day = BillDay.of(bill_date)
    bps = fee_bps("alipay")
    paid = db.session.scalars(
        select(GatewayAlipayTrade).where(
            GatewayAlipayTrade.app_id == app_id,
            GatewayAlipayTrade.paid_at >= day.start,
            GatewayAlipayTrade.paid_at < day.end,
        )
    ).all()
    rows = [
        AlipayBillRow(trade, None, trade.total_amount_fen,
                      -payment_fee(trade.total_amount_fen, bps), trade.paid_at)
        for trade in paid
        if trade.paid_at is not None
    ]
    refunded_today = db.session.scalars(
        select(GatewayAlipayTrade.id)
        .join(GatewayAlipayRefund, GatewayAlipayRefund.trade_id == GatewayAlipayTrade.id)
        .where(
            GatewayAlipayTrade.app_id == app_id,
            GatewayAlipayRefund.created_at >= day.start,
            GatewayAlipayRefund.created_at < day.end,
        )
        .distinct()
    ).all()
    for trade_id in refunded_today:
        # Every refund of the trade, earlier days' too: each one's share of the fee
        # depends on what was refunded before it.
        refunds = db.session.scalars(
            select(GatewayAlipayRefund)
            .where(GatewayAlipayRefund.trade_id == trade_id)
            .order_by(GatewayAlipayRefund.created_at, GatewayAlipayRefund.id)
        ).all()
        trade = refunds[0].trade
        fee = payment_fee(trade.total_amount_fen, bps)
        shares = refund_fees(trade.total_amount_fen, fee, [refund.refund_fen for refund in refunds])
        rows.extend(
            AlipayBillRow(trade, refund, -refund.refund_fen, share, refund.created_at)
            for refund, share in zip(refunds, shares)
            if day.holds(refund.created_at)
        )
    return sorted(rows, key=lambda row: (row.completed_at, row.trade.id, row.refund is not None,
                                         row.refund.id if row.refund else 0))


def build_archive(seller_id: str, bill_date: date, rows: list[AlipayBillRow]) -> bytes:
    """The bill ZIP Alipay would serve for ``rows``."""
    exported = beijing(now())
    prefix = f"{bill_account(seller_id)}_{bill_date:%Y%m%d}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for suffix, text in (
            (DETAIL_SUFFIX, _detail_text(seller_id, bill_date, rows, exported)),
            (SUMMARY_SUFFIX, _summary_text(seller_id, bill_date, rows, exported)),
        ):
            member = _GbkNamedMember(prefix + suffix, exported.timetuple()[:6])
            member.compress_type = zipfile.ZIP_DEFLATED
            # Alipay's files are GBK; a character GBK lacks becomes "?", as in its exports.
            archive.writestr(member, text.encode("gbk", errors="replace"))
    return buffer.getvalue()


class _GbkNamedMember(zipfile.ZipInfo):
    """A member named as Alipay's archives name them: GBK bytes without the UTF-8 flag,
    which readers must know to decode (zipfile offers no public switch for writing it)."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("gbk"), self.flag_bits & ~_UTF8_NAME_FLAG


def _heading(title: str, seller_id: str, bill_date: date) -> list[str]:
    def chinese(day: date) -> str:
        return f"{day:%Y}年{day:%m}月{day:%d}日 00:00:00"

    return [
        f"#支付宝{title}查询",
        f"#账号：[{bill_account(seller_id)}]",
        f"#起始日期：[{chinese(bill_date)}]   终止日期：[{chinese(bill_date + timedelta(days=1))}]",
        f"#{_RULE}{title}列表{_RULE[:-1]}",
    ]


def _export_line(exported: datetime) -> str:
    return f"#导出时间：[{exported:%Y年%m月%d日 %H:%M:%S}]"


def _csv_lines(rows: list[list[str]]) -> list[str]:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().splitlines()


def _beijing_text(moment: datetime | None) -> str:
    return format_beijing_time(as_aware(moment)) if moment is not None else ""


def _detail_cells(row: AlipayBillRow) -> list[str]:
    trade, amount = row.trade, format_yuan(row.amount_fen)
    refund_no = row.refund.out_request_no if row.refund is not None else ""
    return [
        f"{trade.trade_no}\t", f"{trade.out_trade_no}\t",
        f"{KIND_REFUND if row.refund is not None else KIND_PAYMENT}\t", one_line(trade.subject),
        _beijing_text(trade.opened_at), _beijing_text(row.completed_at),
        "\t", "\t", "\t", "\t", f"{trade.buyer_logon_id or ''}\t",
        amount, amount, "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00\t", "0.00",
        f"{refund_no}\t", format_yuan(row.fee_fen), "0.00",
        one_line(row.refund.reason or "") if row.refund is not None else "",
    ]


def _detail_text(
    seller_id: str, bill_date: date, rows: list[AlipayBillRow], exported: datetime
) -> str:
    payments = [row for row in rows if row.refund is None]
    refunds = [row for row in rows if row.refund is not None]
    lines = _heading("业务明细", seller_id, bill_date)
    lines += _csv_lines([list(DETAIL_COLUMNS)] + [_detail_cells(row) for row in rows])
    lines += [
        f"#{_RULE}业务明细列表结束{_RULE[:-5]}",
        f"#交易合计：{len(payments)}笔，商家实收共{format_yuan(sum(r.amount_fen for r in payments))}元，"
        "商家优惠共0.00元",
        f"#退款合计：{len(refunds)}笔，商家实收退款共{format_yuan(sum(r.amount_fen for r in refunds))}元，"
        "商家优惠退款共0.00元",
        _export_line(exported),
    ]
    return "\r\n".join(lines) + "\r\n"


def _summary_text(
    seller_id: str, bill_date: date, rows: list[AlipayBillRow], exported: datetime
) -> str:
    received = sum(row.amount_fen for row in rows)
    fees = sum(row.fee_fen for row in rows)
    total = [
        SUMMARY_TOTAL_ROW, "",
        str(sum(row.refund is None for row in rows)), str(sum(row.refund is not None for row in rows)),
        format_yuan(received), format_yuan(received), "0.00", "0.00", "0.00",
        format_yuan(fees), "0.00", format_yuan(received + fees),
    ]
    lines = _heading("业务汇总", seller_id, bill_date)
    lines += _csv_lines([list(SUMMARY_COLUMNS), total])
    lines += [f"#{_RULE[1:]}业务汇总列表结束{_RULE[:-4]}", _export_line(exported)]
    return "\r\n".join(lines) + "\r\n"
