"""The emulator's own books: the trades it holds as "Alipay" and the notifications it owes.

These tables belong to the emulated party, not to CourseCashier; nothing outside
``app.gateway`` reads them.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

TRADE_STATUSES = ("precreated", "WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_CLOSED")


class GatewayAlipayTrade(db.Model):
    """One out_trade_no as Alipay sees it.

    ``precreated`` means a QR code exists but nobody scanned it: Alipay itself has no
    trade yet, so a query answers ACQ.TRADE_NOT_EXIST. Opening the QR page plays the
    scan, creates the trade (``opened_at``, ``trade_no``) and makes it WAIT_BUYER_PAY.
    """

    __tablename__ = "gateway_alipay_trades"
    __table_args__ = (
        CheckConstraint(
            "status IN ('precreated', 'WAIT_BUYER_PAY', 'TRADE_SUCCESS', 'TRADE_CLOSED')",
            name="status",
        ),
        CheckConstraint("total_amount_fen > 0", name="total_amount_fen"),
        CheckConstraint("expires_at > created_at", name="expires_after_created"),
        # A trade number exists exactly when the trade does, i.e. once the QR was opened.
        CheckConstraint(
            "(opened_at IS NULL AND trade_no IS NULL)"
            " OR (opened_at IS NOT NULL AND trade_no IS NOT NULL)",
            name="opened_has_trade_no",
        ),
        CheckConstraint("status <> 'precreated' OR opened_at IS NULL", name="precreated_unopened"),
        CheckConstraint(
            "status NOT IN ('WAIT_BUYER_PAY', 'TRADE_SUCCESS') OR opened_at IS NOT NULL",
            name="live_trade_opened",
        ),
        CheckConstraint(
            "(status = 'TRADE_SUCCESS' AND paid_at IS NOT NULL AND buyer_logon_id IS NOT NULL)"
            " OR (status <> 'TRADE_SUCCESS' AND paid_at IS NULL)",
            name="paid_iff_success",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    out_trade_no: Mapped[str] = mapped_column(String(64), unique=True)
    app_id: Mapped[str] = mapped_column(String(32))
    qr_token: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(256))
    total_amount_fen: Mapped[int]
    notify_url: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime]  # always set from the injectable clock
    expires_at: Mapped[datetime]
    opened_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="precreated", index=True)
    trade_no: Mapped[str | None] = mapped_column(String(64), unique=True)
    paid_at: Mapped[datetime | None]
    buyer_logon_id: Mapped[str | None] = mapped_column(String(100))
    closed_at: Mapped[datetime | None]


class GatewayNotification(db.Model):
    """The asynchronous notification owed for one paid trade, and its delivery record.

    ``notify_id`` stays the same across retries, as Alipay's does, so the merchant can
    dedupe. ``next_attempt_at`` is NULL once delivered or given up.
    """

    __tablename__ = "gateway_notifications"
    __table_args__ = (
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint(
            "delivered_at IS NULL OR next_attempt_at IS NULL", name="delivered_not_scheduled"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # One TRADE_SUCCESS notification per trade: a second payment cannot happen.
    trade_id: Mapped[int] = mapped_column(ForeignKey("gateway_alipay_trades.id"), unique=True)
    notify_id: Mapped[str] = mapped_column(String(64), unique=True)
    notify_url: Mapped[str] = mapped_column(String(512))
    form_body: Mapped[str | None] = mapped_column(Text)  # what was sent last, signed
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]  # always set from the injectable clock
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    last_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    last_answer: Mapped[str | None] = mapped_column(String(255))

    trade: Mapped[GatewayAlipayTrade] = relationship()
