from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.checkout.models import Order, OrderLine
from app.extensions import db
from app.timeutil import system_now


class PaymentAttempt(db.Model):
    """One QR code at one channel, with its own out_trade_no. At most one succeeds."""

    __tablename__ = "payment_attempts"
    __table_args__ = (
        CheckConstraint("status IN ('created', 'succeeded', 'closed', 'failed')", name="status"),
        CheckConstraint("amount_fen > 0", name="amount_fen"),
        CheckConstraint("channel IN ('alipay', 'wechat')", name="channel"),
        CheckConstraint("fee_fen >= 0", name="fee_fen"),
        # The paid attempts' timeline, whole, by payment time: app/analytics ranks a
        # month of fund-flow times (at a million orders, some 70,000 payments) from the
        # index alone, without reading the table's wide rows.
        Index("ix_payment_attempts_paid_timeline", "succeeded_at", "channel", "channel_opened_at",
              "qr_issued_at", "booked_at",
              sqlite_where=text("status = 'succeeded'"), postgresql_where=text("status = 'succeeded'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    out_trade_no: Mapped[str] = mapped_column(String(64), unique=True)
    amount_fen: Mapped[int]
    status: Mapped[str] = mapped_column(String(10), default="created", index=True)
    qr_code: Mapped[str | None] = mapped_column(String(512))
    channel_trade_no: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    # Indexed for app/analytics, which reads the attempts of a range of orders by it.
    created_at: Mapped[datetime] = mapped_column(default=system_now, index=True)
    # The channel's word on when it was paid (its stated time; our clock when it states
    # none): the "paid" step of the fund-flow timeline (app/analytics).
    succeeded_at: Mapped[datetime | None] = mapped_column(index=True)
    closed_at: Mapped[datetime | None]
    # When the payer opened the trade at the channel (Alipay's gmt_create: the scan).
    # WeChat Pay Native says nothing of a scan, so it stays None there.
    channel_opened_at: Mapped[datetime | None]
    # Our clock in the transaction that booked the payment (ledger entry and grant):
    # succeeded_at is the channel's time, so it cannot say how long we took.
    booked_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(255))
    # What the channel keeps of this payment (app/ledger/fees.py), set when it succeeds.
    fee_fen: Mapped[int | None]
    # Active query (DESIGN.md §8): when to ask the channel next while still "created",
    # and how often we asked; the QR's issue time starts the schedule.
    qr_issued_at: Mapped[datetime | None]
    next_query_at: Mapped[datetime | None] = mapped_column(index=True)
    queries: Mapped[int] = mapped_column(default=0)

    order: Mapped[Order] = relationship()


class InboxNotification(db.Model):
    """A verified channel notification, stored before any processing (DESIGN.md §8).

    The unique dedupe key makes a redelivered notification one row; processing it is a
    job that can run any number of times.
    """

    __tablename__ = "notification_inbox"
    __table_args__ = (
        CheckConstraint("status IN ('received', 'processed', 'failed')", name="status"),
        # A channel's latest callback, for the channel-silence alert (app/alerts).
        Index("ix_notification_inbox_channel_received_at", "channel", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    dedupe_key: Mapped[str] = mapped_column(String(128), unique=True)
    out_trade_no: Mapped[str] = mapped_column(String(64), index=True)
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("payment_attempts.id"), index=True)
    # What the verified notification said, so the job need not parse the body again.
    trade_state: Mapped[str] = mapped_column(String(12))
    amount_fen: Mapped[int]
    channel_trade_no: Mapped[str] = mapped_column(String(64))
    paid_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]  # the channel's trade-creation (scan) time, if it says
    raw_body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="received", index=True)
    outcome: Mapped[str | None] = mapped_column(String(255))
    deliveries: Mapped[int] = mapped_column(default=1)
    received_at: Mapped[datetime] = mapped_column(default=system_now)
    processed_at: Mapped[datetime | None]

    attempt: Mapped[PaymentAttempt | None] = relationship()


class RejectedNotification(db.Model):
    """A callback we refused (bad signature, not our merchant, wrong amount...).

    Kept for staff so a forgery or a misconfiguration is visible; it never moves money.
    Only a bounded excerpt of the body is kept.
    """

    __tablename__ = "rejected_notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(255))
    out_trade_no: Mapped[str | None] = mapped_column(String(64))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    body_excerpt: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=system_now, index=True)


class ChannelHealth(db.Model):
    """Recent failures of one channel. Too many in a short window rest it for a while,
    and checkout steers learners to the other channel meanwhile."""

    __tablename__ = "channel_health"
    __table_args__ = (CheckConstraint("failures_in_window >= 0", name="failures_in_window"),)

    channel: Mapped[str] = mapped_column(String(10), primary_key=True)
    window_started_at: Mapped[datetime | None]
    failures_in_window: Mapped[int] = mapped_column(default=0)
    unhealthy_until: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(255))
    last_success_at: Mapped[datetime | None]


class Refund(db.Model):
    """Money going back to the payer of one attempt, with our own out_refund_no.

    ``kind`` says why: ``orphan`` is a system refund of money that no order can keep
    (DESIGN.md §7); it needs no approval.
    """

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint(
            "status IN ('requested', 'awaiting_finance', 'approved', 'rejected', 'processing',"
            " 'succeeded', 'failed')",
            name="status",
        ),
        CheckConstraint("kind IN ('customer', 'orphan')", name="kind"),
        CheckConstraint("amount_fen > 0", name="amount_fen"),
        CheckConstraint("fee_fen >= 0", name="fee_fen"),
        # The part that goes back to the prepaid balance (app/wallet); the rest goes back
        # through the attempt's channel. A refund of an order paid by balance alone has
        # no attempt.
        CheckConstraint("wallet_paid_fen >= 0 AND wallet_bonus_fen >= 0"
                        " AND wallet_paid_fen + wallet_bonus_fen <= amount_fen", name="wallet_fen"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_no: Mapped[str] = mapped_column(String(64), unique=True)  # our out_refund_no
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("payment_attempts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    amount_fen: Mapped[int]
    # Fixed at the (final) approval; see app/wallet/refunds.py.
    wallet_paid_fen: Mapped[int] = mapped_column(default=0, server_default="0")
    wallet_bonus_fen: Mapped[int] = mapped_column(default=0, server_default="0")
    reason: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), index=True)
    channel_refund_no: Mapped[str | None] = mapped_column(String(64))
    # The part of the payment's fee the channel gave back with this refund.
    fee_fen: Mapped[int | None]
    tries: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(255))
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=system_now)
    succeeded_at: Mapped[datetime | None] = mapped_column(index=True)
    # Who asked and who decided (maker-checker: a large refund needs two approvers).
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    first_approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(String(255))

    attempt: Mapped[PaymentAttempt | None] = relationship()
    lines: Mapped[list[RefundLine]] = relationship(back_populates="refund", order_by="RefundLine.id")


def refund_channel_fen(refund: Refund) -> int:
    """What of a refund goes back through the channel: all of it, less the balance part."""
    return refund.amount_fen - refund.wallet_paid_fen - refund.wallet_bonus_fen


class RefundLine(db.Model):
    """An order line a customer refund gives back, in full: its amount already carries
    the coupon share and tax the payment allocated to it."""

    __tablename__ = "refund_lines"
    __table_args__ = (
        UniqueConstraint("refund_id", "order_line_id"),
        CheckConstraint("amount_fen > 0", name="amount_fen"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("refunds.id"), index=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"), index=True)
    amount_fen: Mapped[int]

    refund: Mapped[Refund] = relationship(back_populates="lines")
    order_line: Mapped[OrderLine] = relationship()


class OrphanPayment(db.Model):
    """Money confirmed for an attempt whose order could not simply take it: the order
    had closed, another attempt had paid it, or the channel reports an amount we never
    asked for. Kept for staff with what was done: fulfilled, refunded, or held for them."""

    __tablename__ = "orphan_payments"
    __table_args__ = (
        CheckConstraint("resolution IN ('fulfilled', 'refunded', 'held')", name="resolution"),
        CheckConstraint("amount_fen > 0", name="amount_fen"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("payment_attempts.id"), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    amount_fen: Mapped[int]
    reason: Mapped[str] = mapped_column(String(255))
    resolution: Mapped[str] = mapped_column(String(10))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"))
    created_at: Mapped[datetime] = mapped_column(default=system_now)

    attempt: Mapped[PaymentAttempt] = relationship()
    refund: Mapped[Refund | None] = relationship()
