"""The emulated WeChat Pay's trade rules: Native order, pay, close, refund and lazy
expiry.

As in ``trades.py`` these functions flush, never commit, and every status change goes
through ``TRANSITIONS`` and a compare-and-set UPDATE. Refusals are raised as
``WechatRefusal`` carrying WeChat's HTTP status, code and message.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.gateway.trades import StaleTrade, insert_new_trade, move_trade
from app.gateway.wechat_models import GatewayWechatRefund, GatewayWechatTrade
from app.timeutil import beijing, now

NOTPAY = "NOTPAY"
SUCCESS = "SUCCESS"
CLOSED = "CLOSED"
REFUND = "REFUND"

TRANSITIONS: dict[str, frozenset[str]] = {
    NOTPAY: frozenset({SUCCESS, CLOSED}),
    SUCCESS: frozenset({REFUND}),  # refunded in full
    CLOSED: frozenset(),
    REFUND: frozenset(),
}
PAID = frozenset({SUCCESS, REFUND})
DEFAULT_TIMEOUT = timedelta(hours=2)  # WeChat's default when time_expire is absent


class WechatRefusal(Exception):
    """An error answer in WeChat Pay's words: HTTP status plus ``{"code", "message"}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def order_not_exist() -> WechatRefusal:
    return WechatRefusal(404, "ORDER_NOT_EXIST", "订单不存在")


def by_out_trade_no(out_trade_no: str) -> GatewayWechatTrade | None:
    return db.session.scalar(
        select(GatewayWechatTrade).where(GatewayWechatTrade.out_trade_no == out_trade_no)
    )


def by_transaction_id(transaction_id: str) -> GatewayWechatTrade | None:
    return db.session.scalar(
        select(GatewayWechatTrade).where(GatewayWechatTrade.transaction_id == transaction_id)
    )


def by_qr_token(token: str) -> GatewayWechatTrade | None:
    return db.session.scalar(select(GatewayWechatTrade).where(GatewayWechatTrade.qr_token == token))


def refund_by_out_refund_no(out_refund_no: str) -> GatewayWechatRefund | None:
    return db.session.scalar(
        select(GatewayWechatRefund).where(GatewayWechatRefund.out_refund_no == out_refund_no)
    )


def _move(trade: GatewayWechatTrade, to: str, **values: object) -> None:
    move_trade(trade, TRANSITIONS, to, **values)


def expire_if_due(trade: GatewayWechatTrade) -> None:
    """Close an unpaid trade whose time_expire passed, when it is next looked at."""
    if trade.status == NOTPAY and now() >= trade.expires_at:
        _move(trade, CLOSED, closed_at=trade.expires_at)


def create_native(
    *,
    mch_id: str,
    app_id: str,
    out_trade_no: str,
    description: str,
    total_fen: int,
    notify_url: str,
    expires_at: datetime | None,
) -> GatewayWechatTrade:
    """The order behind a code_url, created on first call and NOTPAY at once.

    The same out_trade_no again with the same amount and description returns the same
    trade; other parameters are INVALID_REQUEST, a paid trade ORDERPAID and a closed one
    ORDER_CLOSED. A new order's ``expires_at`` (naive UTC) must lie ahead; None means
    two hours.
    """
    moment = now()
    if expires_at is not None and expires_at <= moment:
        # Too late for a new order; a repeat of an existing one is still answered as such.
        existing = by_out_trade_no(out_trade_no)
        if existing is None:
            raise WechatRefusal(400, "PARAM_ERROR", "time_expire 已过期")
    else:
        trade = insert_new_trade(
            GatewayWechatTrade,
            out_trade_no=out_trade_no,
            mch_id=mch_id,
            app_id=app_id,
            qr_token=secrets.token_urlsafe(16),
            description=description,
            total_fen=total_fen,
            notify_url=notify_url,
            created_at=moment,
            expires_at=expires_at or moment + DEFAULT_TIMEOUT,
            status=NOTPAY,
            refunded_fen=0,
        )
        if trade is not None:
            return trade
        existing = by_out_trade_no(out_trade_no)
        if existing is None:  # deleted since it conflicted: answered as busy, to be retried
            raise StaleTrade(out_trade_no)
    expire_if_due(existing)
    if existing.status in PAID:
        raise WechatRefusal(400, "ORDERPAID", "该订单已支付")
    if existing.status == CLOSED:
        raise WechatRefusal(400, "ORDER_CLOSED", "订单已关闭")
    if existing.total_fen != total_fen or existing.description != description:
        raise WechatRefusal(400, "INVALID_REQUEST", "订单号重复，参数与首次请求时不一致")
    return existing


def pay(trade: GatewayWechatTrade, openid: str) -> None:
    """The payer confirmed in the app. Only a NOTPAY, unexpired trade can be paid.

    Raises WechatRefusal(409) otherwise; the sandbox page shows its message.
    """
    expire_if_due(trade)
    if trade.status != NOTPAY:
        raise WechatRefusal(409, "TRADE_STATE_ERROR", "订单状态不允许支付")
    moment = now()
    # WeChat transaction ids: 4200001234, the Beijing date, then a serial; the row id
    # keeps them unique.
    transaction_id = f"4200001234{beijing(moment):%Y%m%d}{trade.id:010d}"
    _move(trade, SUCCESS, paid_at=moment, transaction_id=transaction_id, payer_openid=openid)


def close(trade: GatewayWechatTrade) -> None:
    """A NOTPAY trade closes; closing a closed one is harmless; a paid one is ORDERPAID."""
    expire_if_due(trade)
    if trade.status in PAID:
        raise WechatRefusal(400, "ORDERPAID", "订单已支付")
    if trade.status == NOTPAY:
        _move(trade, CLOSED, closed_at=now())


def refund(
    trade: GatewayWechatTrade,
    *,
    out_refund_no: str,
    refund_fen: int,
    total_fen: int,
    reason: str | None,
    notify_url: str | None,
) -> GatewayWechatRefund:
    """A domestic refund, done at once (status SUCCESS).

    The same out_refund_no with the same amount returns the first refund; with another
    amount, or for another trade, it is INVALID_REQUEST. ``total_fen`` must be the
    trade's total; only a paid trade refunds, never past its total (NOT_ENOUGH). Refunded
    in full, the trade reports REFUND.
    """
    existing = refund_by_out_refund_no(out_refund_no)
    if existing is not None:
        if existing.trade_id != trade.id or existing.refund_fen != refund_fen:
            raise WechatRefusal(400, "INVALID_REQUEST", "退款单号重复，参数与首次请求时不一致")
        return existing
    expire_if_due(trade)
    if trade.status not in PAID:
        raise WechatRefusal(400, "INVALID_REQUEST", "订单未支付，不能退款")
    if total_fen != trade.total_fen:
        raise WechatRefusal(400, "PARAM_ERROR", "amount.total 与原订单金额不一致")
    refunded = trade.refunded_fen + refund_fen
    if refunded > trade.total_fen:
        raise WechatRefusal(400, "NOT_ENOUGH", "申请退款金额超过订单可退金额")
    sequence = 1 + (
        db.session.scalar(
            select(func.count()).select_from(GatewayWechatRefund).where(
                GatewayWechatRefund.trade_id == trade.id
            )
        )
        or 0
    )
    _move(trade, REFUND if refunded == trade.total_fen else SUCCESS, refunded_fen=refunded)
    moment = now()
    refund_row = GatewayWechatRefund(
        trade_id=trade.id,
        out_refund_no=out_refund_no,
        # 29 digits like WeChat's: a prefix, the Beijing date, the trade and its refund.
        refund_id=f"50300{beijing(moment):%Y%m%d}{trade.id:010d}{sequence:06d}",
        refund_fen=refund_fen,
        reason=reason,
        notify_url=notify_url,
        created_at=moment,
    )
    try:
        with db.session.begin_nested():
            db.session.add(refund_row)
    except IntegrityError:
        # The same out_refund_no for another trade at the same moment; a lost race.
        raise StaleTrade(trade.out_trade_no) from None
    return refund_row
