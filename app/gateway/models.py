"""The emulator's own books: the trades and refunds it holds as "Alipay", the
notifications it owes on either channel and the fault modes an operator switched on.

These tables belong to the emulated party, not to CourseCashier; nothing outside
``app.gateway`` reads them. The WeChat Pay tables live in ``wechat_models``.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.gateway.wechat_models import GatewayWechatRefund, GatewayWechatTrade

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
        # A paid trade is TRADE_SUCCESS, or TRADE_CLOSED once refunded in full.
        CheckConstraint(
            "(status = 'TRADE_SUCCESS' AND paid_at IS NOT NULL AND buyer_logon_id IS NOT NULL"
            " AND refunded_fen < total_amount_fen)"
            " OR (status IN ('precreated', 'WAIT_BUYER_PAY') AND paid_at IS NULL)"
            " OR (status = 'TRADE_CLOSED'"
            " AND (paid_at IS NULL OR refunded_fen = total_amount_fen))",
            name="paid_iff_success",
        ),
        CheckConstraint(
            "refunded_fen >= 0 AND refunded_fen <= total_amount_fen", name="refunded_within_total"
        ),
        CheckConstraint("refunded_fen = 0 OR paid_at IS NOT NULL", name="refunds_only_when_paid"),
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
    refunded_fen: Mapped[int] = mapped_column(default=0)


class GatewayAlipayRefund(db.Model):
    """One ``alipay.trade.refund`` that moved money; out_request_no is unique per trade."""

    __tablename__ = "gateway_alipay_refunds"
    __table_args__ = (
        UniqueConstraint("trade_id", "out_request_no"),
        CheckConstraint("refund_fen > 0", name="refund_fen"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trade_id: Mapped[int] = mapped_column(ForeignKey("gateway_alipay_trades.id"), index=True)
    out_request_no: Mapped[str] = mapped_column(String(64))
    refund_fen: Mapped[int]
    reason: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime]

    trade: Mapped[GatewayAlipayTrade] = relationship()


class GatewayNotification(db.Model):
    """An asynchronous notification the emulator owes, and its delivery record: the
    success notification of one paid trade of either channel, or the REFUND.SUCCESS
    callback of one WeChat refund that named a notify_url.

    Exactly one owner is set, of the row's channel. ``notify_id`` is Alipay's notify_id
    or WeChat's event id; it stays the same across retries so the merchant can dedupe.
    ``next_attempt_at`` is NULL once delivered, given up or dropped by a fault mode.
    """

    __tablename__ = "gateway_notifications"
    __table_args__ = (
        CheckConstraint("channel IN ('alipay', 'wechat')", name="channel"),
        # Alipay notifies payments only; WeChat a payment or a refund, never both at once.
        CheckConstraint(
            "(channel = 'alipay' AND alipay_trade_id IS NOT NULL"
            " AND wechat_trade_id IS NULL AND wechat_refund_id IS NULL)"
            " OR (channel = 'wechat' AND alipay_trade_id IS NULL"
            " AND ((wechat_trade_id IS NOT NULL AND wechat_refund_id IS NULL)"
            " OR (wechat_trade_id IS NULL AND wechat_refund_id IS NOT NULL)))",
            name="one_owner_of_its_channel",
        ),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint(
            "delivered_at IS NULL OR next_attempt_at IS NULL", name="delivered_not_scheduled"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))
    # One success notification per trade: a second payment cannot happen.
    alipay_trade_id: Mapped[int | None] = mapped_column(
        ForeignKey("gateway_alipay_trades.id"), unique=True
    )
    wechat_trade_id: Mapped[int | None] = mapped_column(
        ForeignKey("gateway_wechat_trades.id"), unique=True
    )
    # One REFUND.SUCCESS callback per refund: a repeated out_refund_no is the same refund.
    wechat_refund_id: Mapped[int | None] = mapped_column(
        ForeignKey("gateway_wechat_refunds.id"), unique=True
    )
    notify_id: Mapped[str] = mapped_column(String(64), unique=True)
    notify_url: Mapped[str] = mapped_column(String(512))
    sent_body: Mapped[str | None] = mapped_column(Text)  # what was sent last, signed
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]  # always set from the injectable clock
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    last_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    last_answer: Mapped[str | None] = mapped_column(String(255))

    alipay_trade: Mapped[GatewayAlipayTrade | None] = relationship()
    wechat_trade: Mapped[GatewayWechatTrade | None] = relationship()
    wechat_refund: Mapped[GatewayWechatRefund | None] = relationship()

    @property
    def out_trade_no(self) -> str:
        """The trade this notification is about (a refund's own trade for a refund), by
        which fault modes are matched."""
        if self.wechat_refund is not None:
            return self.wechat_refund.trade.out_trade_no
        trade = self.alipay_trade if self.channel == "alipay" else self.wechat_trade
        assert trade is not None  # the CHECK constraint guarantees it
        return trade.out_trade_no


FAULT_CHANNELS = ("alipay", "wechat", "*")
FAULT_MODES = (
    "drop_notify",
    "delay_notify",
    "duplicate_notify",
    "shuffle_notify",
    "api_error",
    "api_unknown",
    "api_timeout",
)


class GatewayFault(db.Model):
    """A fault mode an operator or a test switched on; see ``faults.py``.

    ``channel`` '*' means both channels; ``out_trade_no`` NULL means every trade.
    """

    __tablename__ = "gateway_faults"
    __table_args__ = (
        CheckConstraint("channel IN ('alipay', 'wechat', '*')", name="channel"),
        CheckConstraint(
            "mode IN (" + ", ".join(f"'{mode}'" for mode in FAULT_MODES) + ")", name="mode"
        ),
        CheckConstraint("delay_seconds >= 0", name="delay_seconds"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))
    out_trade_no: Mapped[str | None] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(24))
    delay_seconds: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
