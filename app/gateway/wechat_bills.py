"""The emulated WeChat Pay's daily trade bill (``bill_type`` ALL), built from the
emulator's own books.

``GET /v3/bill/tradebill`` (see ``wechat_api``) answers the SHA1 of the file and a
five-minute address; the file is the UTF-8 CSV built here, as WeChat Pay writes it:
its column header, one row per payment (交易状态 SUCCESS, 交易时间 the payment's) or
refund (交易状态 REFUND, 交易时间 when it completed), every field prefixed by a
backtick, then the summary header and row. The fee (手续费) has five decimals and is
negative on a refund row, where it is given back. The emulator has no vouchers, so a
refund row's 退款金额 (net of recharge vouchers) equals its 申请退款金额 (what the
merchant asked for), and 退款总金额 equals 申请退款总金额. Lines end in CRLF.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select

from app.extensions import db
from app.gateway.bills import BillDay, fee_bps, one_line, payment_fee, rate_text, refund_fees
from app.gateway.wechat_models import GatewayWechatRefund, GatewayWechatTrade
from app.money import format_yuan
from app.payments.channels.wechat_bill import (
    COLUMNS,
    FIELD_PREFIX,
    SUMMARY_COLUMNS,
    TRADE_STATE_REFUND,
)
from app.timeutil import beijing

# WeChat Pay's download addresses live five minutes.
URL_LIFETIME = timedelta(minutes=5)
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class WechatBillRow:
    trade: GatewayWechatTrade
    refund: GatewayWechatRefund | None
    fee_fen: int  # what the row moves of the fee: positive, whichever way
    occurred_at: datetime  # naive UTC


def bill_rows(mch_id: str, bill_date: date) -> list[WechatBillRow]:
    """Every trade of ``mch_id`` paid on the Beijing day and every refund completed on
    it, in the order they happened."""
    day = BillDay.of(bill_date)
    bps = fee_bps("wechat")
    paid = db.session.scalars(
        select(GatewayWechatTrade).where(
            GatewayWechatTrade.mch_id == mch_id,
            GatewayWechatTrade.paid_at >= day.start,
            GatewayWechatTrade.paid_at < day.end,
        )
    ).all()
    rows = [
        WechatBillRow(trade, None, payment_fee(trade.total_fen, bps), trade.paid_at)
        for trade in paid
        if trade.paid_at is not None
    ]
    refunded_today = db.session.scalars(
        select(GatewayWechatTrade.id)
        .join(GatewayWechatRefund, GatewayWechatRefund.trade_id == GatewayWechatTrade.id)
        .where(
            GatewayWechatTrade.mch_id == mch_id,
            GatewayWechatRefund.created_at >= day.start,
            GatewayWechatRefund.created_at < day.end,
        )
        .distinct()
    ).all()
    for trade_id in refunded_today:
        # All the trade's refunds, earlier days' too: a refund's share of the fee
        # depends on what was refunded before it.
        refunds = db.session.scalars(
            select(GatewayWechatRefund)
            .where(GatewayWechatRefund.trade_id == trade_id)
            .order_by(GatewayWechatRefund.created_at, GatewayWechatRefund.id)
        ).all()
        trade = refunds[0].trade
        fee = payment_fee(trade.total_fen, bps)
        shares = refund_fees(trade.total_fen, fee, [refund.refund_fen for refund in refunds])
        rows.extend(
            WechatBillRow(trade, refund, share, refund.created_at)
            for refund, share in zip(refunds, shares)
            if day.holds(refund.created_at)
        )
    return sorted(rows, key=lambda row: (row.occurred_at, row.trade.id, row.refund is not None,
                                         row.refund.id if row.refund else 0))


def bill_file(mch_id: str, bill_date: date) -> bytes:
    """The day's ALL bill of ``mch_id``, as the bytes WeChat Pay hashes and serves."""
    return bill_text(bill_rows(mch_id, bill_date), fee_bps("wechat")).encode("utf-8")


def _fee_text(fen: int) -> str:
    return format_yuan(fen) + "000"  # five decimals, as WeChat Pay writes fees


def _cells(row: WechatBillRow, bps: int) -> list[str]:
    trade, refund = row.trade, row.refund
    total = format_yuan(trade.total_fen)
    # 申请退款金额 and 退款金额 alike: no recharge voucher takes a share of a refund here.
    asked = refunded = format_yuan(refund.refund_fen) if refund is not None else "0.00"
    return [
        beijing(row.occurred_at).strftime(_TIME_FORMAT), trade.app_id, trade.mch_id, "0", "",
        trade.transaction_id or "", trade.out_trade_no, trade.payer_openid or "", "NATIVE",
        TRADE_STATE_REFUND if refund is not None else "SUCCESS", "OTHERS", "CNY",
        "0.00" if refund is not None else total, "0.00",
        refund.refund_id if refund is not None else "0",
        refund.out_refund_no if refund is not None else "0",
        refunded, "0.00",  # 退款金额, 充值券退款金额
        "ORIGINAL" if refund is not None else "", "SUCCESS" if refund is not None else "",
        one_line(trade.description), "",
        _fee_text(-row.fee_fen if refund is not None else row.fee_fen), rate_text(bps),
        total, asked, "",  # 订单金额, 申请退款金额, 费率备注
    ]


def bill_text(rows: list[WechatBillRow], bps: int) -> str:
    payments = [row for row in rows if row.refund is None]
    refunds = [row for row in rows if row.refund is not None]
    # Without vouchers, 退款总金额 and 申请退款总金额 are the same sum.
    refunded = sum(row.refund.refund_fen for row in refunds if row.refund is not None)
    summary = [
        str(len(rows)),
        format_yuan(sum(row.trade.total_fen for row in payments)),
        format_yuan(refunded),
        "0.00",
        _fee_text(sum(row.fee_fen for row in payments) - sum(row.fee_fen for row in refunds)),
        format_yuan(sum(row.trade.total_fen for row in rows)),
        format_yuan(refunded),
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows([FIELD_PREFIX + cell for cell in _cells(row, bps)] for row in rows)
    writer.writerow(SUMMARY_COLUMNS)
    writer.writerow([FIELD_PREFIX + cell for cell in summary])
    return buffer.getvalue()
