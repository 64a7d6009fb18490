"""The emulated Alipay's trade rules: precreate, scan, pay, close, refund and lazy
expiry.

These functions flush, never commit: the gateway's views are the transaction boundary,
as everywhere else in the app. Every status change goes through ``TRANSITIONS`` and a
compare-and-set UPDATE, so two racing requests cannot both move one trade.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Mapping, TypeVar

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.gateway.models import GatewayAlipayRefund, GatewayAlipayTrade
from app.timeutil import BEIJING, beijing, from_aware, now

PRECREATED = "precreated"
WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_CLOSED = "TRADE_CLOSED"

TRANSITIONS: dict[str, frozenset[str]] = {
    PRECREATED: frozenset({WAIT_BUYER_PAY, TRADE_CLOSED}),
    WAIT_BUYER_PAY: frozenset({TRADE_SUCCESS, TRADE_CLOSED}),
    TRADE_SUCCESS: frozenset({TRADE_CLOSED}),  # refunded in full
    TRADE_CLOSED: frozenset(),
}
UNPAID = frozenset({PRECREATED, WAIT_BUYER_PAY})
TradeT = TypeVar("TradeT")

# Alipay's precreate: timeout_express from 1m to 15d, or "1c" (until the end of today);
# without one the QR code lives two hours.
_TIMEOUT_RE = re.compile(r"^(?:([1-9]\d{0,5})([mhd])|1c)$")
_TIMEOUT_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
MAX_TIMEOUT = timedelta(days=15)
DEFAULT_TIMEOUT = timedelta(hours=2)


class TradeError(Exception):
    """A business refusal in Alipay's words; the API answers it as code 40004."""

    def __init__(self, sub_code: str, sub_msg: str) -> None:
        super().__init__(f"{sub_code}: {sub_msg}")
        self.sub_code = sub_code
        self.sub_msg = sub_msg


class StaleTrade(Exception):
    """Another request moved the trade first; the caller rolls back and may retry."""


class IllegalTransition(RuntimeError):
    """A move the transition table forbids: a bug in the emulator, not a user error."""


class CloseOutcome(str, Enum):
    CLOSED = "closed"
    NOT_EXIST = "not_exist"  # never scanned: Alipay has no such trade to close


def expiry_from_timeout(timeout_express: str | None, start: datetime) -> datetime:
    """The naive-UTC deadline that ``timeout_express`` sets for a QR made at ``start``.

    Raises TradeError(ACQ.INVALID_PARAMETER) on anything Alipay would refuse.
    """
    if timeout_express is None or timeout_express == "":
        return start + DEFAULT_TIMEOUT
    match = _TIMEOUT_RE.match(timeout_express)
    if match is None:
        raise TradeError("ACQ.INVALID_PARAMETER", "timeout_express 格式错误")
    if match.group(1) is None:  # "1c": midnight at the end of today, Beijing time
        tomorrow = beijing(start).date() + timedelta(days=1)
        return from_aware(datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=BEIJING))
    span = int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]
    if span > MAX_TIMEOUT:
        raise TradeError("ACQ.INVALID_PARAMETER", "timeout_express 超出范围")
    return start + span


def mask_logon_id(logon_id: str) -> str:
    """Alipay shows buyers masked: ``learner@example.com`` -> ``lea***@example.com``,
    ``13800001234`` -> ``138****1234``."""
    local, at, domain = logon_id.partition("@")
    if at:
        return f"{local[:3]}***@{domain}"
    if len(logon_id) > 7:
        return f"{logon_id[:3]}****{logon_id[-4:]}"
    return logon_id[:1] + "***"


def by_out_trade_no(out_trade_no: str) -> GatewayAlipayTrade | None:
    return db.session.scalar(
        select(GatewayAlipayTrade).where(GatewayAlipayTrade.out_trade_no == out_trade_no)
    )


def by_trade_no(trade_no: str) -> GatewayAlipayTrade | None:
    return db.session.scalar(
        select(GatewayAlipayTrade).where(GatewayAlipayTrade.trade_no == trade_no)
    )


def by_qr_token(token: str) -> GatewayAlipayTrade | None:
    return db.session.scalar(select(GatewayAlipayTrade).where(GatewayAlipayTrade.qr_token == token))


def move_trade(
    trade: Any, transitions: Mapping[str, frozenset[str]], to: str, **values: object
) -> None:
    """Compare-and-set ``trade.status`` to ``to`` for either channel's trade model (``to``
    may equal the current status when only ``values`` change, e.g. a partial refund);
    StaleTrade if someone moved the trade or its refunded amount first."""
    if to != trade.status and to not in transitions[trade.status]:
        raise IllegalTransition(f"{trade.status} -> {to}")
    model = type(trade)
    result = db.session.execute(
        update(model)
        .where(
            model.id == trade.id,
            model.status == trade.status,
            model.refunded_fen == trade.refunded_fen,
        )
        .values(status=to, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise StaleTrade(trade.out_trade_no)
    db.session.refresh(trade)


def insert_new_trade(model: type[TradeT], **values: object) -> TradeT | None:
    """Insert either channel's trade unless its out_trade_no has one: the new trade, or
    None for a repeat (or for a concurrent first call that won; PostgreSQL waits for it
    to commit). One ``INSERT … ON CONFLICT DO NOTHING RETURNING`` statement, in the
    dialect's words, where a lookup and an insert in a savepoint took four."""
    dialect = db.session.get_bind().dialect.name
    statement = (
        (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[model.out_trade_no])
        .returning(model)
    )
    return db.session.scalars(statement).one_or_none()


def _move(trade: GatewayAlipayTrade, to: str, **values: object) -> None:
    move_trade(trade, TRANSITIONS, to, **values)


def expire_if_due(trade: GatewayAlipayTrade) -> None:
    """Close an unpaid trade whose deadline passed. Expiry is lazy: it happens when the
    trade is next looked at, which is indistinguishable from outside."""
    if trade.status in UNPAID and now() >= trade.expires_at:
        _move(trade, TRADE_CLOSED, closed_at=trade.expires_at)


def precreate(
    *,
    app_id: str,
    out_trade_no: str,
    amount_fen: int,
    subject: str,
    timeout_express: str | None,
    notify_url: str | None,
) -> GatewayAlipayTrade:
    """The trade behind a QR code, created on first call.

    Precreating the same out_trade_no again with the same amount returns the same trade
    (so the same QR code); a different amount, or a trade already paid or closed, is
    refused the way Alipay refuses it.
    """
    moment = now()
    expires_at = expiry_from_timeout(timeout_express, moment)
    trade = insert_new_trade(
        GatewayAlipayTrade,
        out_trade_no=out_trade_no,
        app_id=app_id,
        qr_token=secrets.token_urlsafe(16),
        subject=subject,
        total_amount_fen=amount_fen,
        notify_url=notify_url,
        created_at=moment,
        expires_at=expires_at,
        status=PRECREATED,
        refunded_fen=0,
    )
    if trade is not None:
        return trade
    existing = by_out_trade_no(out_trade_no)
    if existing is None:  # deleted since it conflicted: answered as busy, to be retried
        raise StaleTrade(out_trade_no)
    expire_if_due(existing)
    if existing.app_id != app_id or existing.total_amount_fen != amount_fen:
        raise TradeError("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
    if existing.status == TRADE_SUCCESS:
        raise TradeError("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
    if existing.status == TRADE_CLOSED:
        raise TradeError("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
    return existing


def open_trade(trade: GatewayAlipayTrade) -> None:
    """The buyer scanned the QR code: Alipay creates the trade and gives it a number.

    Opening an already opened, paid or closed trade changes nothing.
    """
    expire_if_due(trade)
    if trade.status != PRECREATED:
        return
    moment = now()
    # Alipay trade numbers start with the Beijing date; the row id keeps them unique.
    trade_no = f"{beijing(moment):%Y%m%d}22001{trade.id:09d}"
    _move(trade, WAIT_BUYER_PAY, opened_at=moment, trade_no=trade_no)


def pay_trade(trade: GatewayAlipayTrade, buyer_logon_id: str) -> None:
    """The buyer confirmed in the app. Only a waiting, unexpired trade can be paid."""
    expire_if_due(trade)
    if trade.status != WAIT_BUYER_PAY:
        raise TradeError("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
    _move(trade, TRADE_SUCCESS, paid_at=now(), buyer_logon_id=mask_logon_id(buyer_logon_id))


def close_trade(trade: GatewayAlipayTrade) -> CloseOutcome:
    """``alipay.trade.close``: a waiting trade closes; closing twice is harmless.

    A never-scanned QR answers NOT_EXIST, like Alipay, but is still closed here so it
    can no longer be paid. A paid trade is refused with ACQ.TRADE_STATUS_ERROR.
    """
    expire_if_due(trade)
    if trade.status == TRADE_SUCCESS:
        raise TradeError("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
    if trade.status in UNPAID:
        _move(trade, TRADE_CLOSED, closed_at=now())
    return CloseOutcome.NOT_EXIST if trade.opened_at is None else CloseOutcome.CLOSED


def refund_by_request_no(
    trade: GatewayAlipayTrade, out_request_no: str
) -> GatewayAlipayRefund | None:
    return db.session.scalar(
        select(GatewayAlipayRefund).where(
            GatewayAlipayRefund.trade_id == trade.id,
            GatewayAlipayRefund.out_request_no == out_request_no,
        )
    )


def refund_trade(
    trade: GatewayAlipayTrade, out_request_no: str, refund_fen: int, reason: str | None
) -> tuple[GatewayAlipayRefund, bool]:
    """``alipay.trade.refund``, synchronous: (the refund, whether money moved now).

    Repeating an out_request_no with the same amount answers the first refund and moves
    nothing (fund_change "N"); with another amount it is ACQ.DISCORDANT_REPEAT_REQUEST.
    Only a paid trade refunds (ACQ.TRADE_STATUS_ERROR), never past its total
    (ACQ.REFUND_AMT_NOT_EQUAL_TOTAL); refunded in full it becomes TRADE_CLOSED.
    """
    existing = refund_by_request_no(trade, out_request_no)
    if existing is not None:
        if existing.refund_fen != refund_fen:
            raise TradeError("ACQ.DISCORDANT_REPEAT_REQUEST", "不一致的请求")
        return existing, False
    expire_if_due(trade)
    if trade.status != TRADE_SUCCESS:
        raise TradeError("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
    refunded = trade.refunded_fen + refund_fen
    if refunded > trade.total_amount_fen:
        raise TradeError("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
    moment = now()
    if refunded == trade.total_amount_fen:
        _move(trade, TRADE_CLOSED, refunded_fen=refunded, closed_at=moment)
    else:
        _move(trade, TRADE_SUCCESS, refunded_fen=refunded)
    refund = GatewayAlipayRefund(
        trade_id=trade.id,
        out_request_no=out_request_no,
        refund_fen=refund_fen,
        reason=reason,
        created_at=moment,
    )
    try:
        with db.session.begin_nested():
            db.session.add(refund)
    except IntegrityError:
        # Unreachable while the compare-and-set above serialises refunds of one trade;
        # answered as a lost race all the same.
        raise StaleTrade(trade.out_trade_no) from None
    return refund, True
