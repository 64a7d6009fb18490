"""Reconciliation runs and the discrepancies they find."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.timeutil import system_now

KINDS = ("missing_ours", "missing_theirs", "amount_mismatch", "status_mismatch", "fee_mismatch")
RESOLUTIONS = ("corrected", "channel", "accepted")


class ReconciliationRun(db.Model):
    """The reconciliation of one channel's bill of one Beijing day.

    One row per (channel, bill_date), updated by each try: the periodic round claims a
    day through ``next_try_at`` (a lease, like an attempt's next query) until a try
    finishes; a later manual run of the day updates the same row.
    """

    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        UniqueConstraint("channel", "bill_date"),
        CheckConstraint("status IN ('pending', 'finished', 'failed')", name="status"),
        CheckConstraint("channel IN ('alipay', 'wechat')", name="channel"),
        CheckConstraint("lines_checked >= 0 AND discrepancies_found >= 0", name="counts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    bill_date: Mapped[date]
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    tries: Mapped[int] = mapped_column(default=0)
    lines_checked: Mapped[int] = mapped_column(default=0)
    discrepancies_found: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(255))
    next_try_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=system_now)


class Discrepancy(db.Model):
    """A difference between a channel's bill and our records, for staff to resolve.

    Known by (channel, bill_date, kind, subject, reference), so running a day again
    finds the same row instead of adding one. A rerun that no longer finds it stamps
    ``cleared_at`` but leaves it open: staff still say what happened (the fix may have
    been ours or the channel's, and the audit log should tell). A run that finds a
    resolved one again reopens it (see `services.record_run`); the audit log keeps the
    resolution it had.
    """

    __tablename__ = "discrepancies"
    __table_args__ = (
        UniqueConstraint("channel", "bill_date", "kind", "subject", "reference"),
        CheckConstraint(
            "kind IN ('missing_ours', 'missing_theirs', 'amount_mismatch', 'status_mismatch',"
            " 'fee_mismatch')",
            name="kind",
        ),
        CheckConstraint("subject IN ('payment', 'refund')", name="subject"),
        CheckConstraint("status IN ('open', 'resolved')", name="status"),
        CheckConstraint("channel IN ('alipay', 'wechat')", name="channel"),
        CheckConstraint(
            "resolution IS NULL OR resolution IN ('corrected', 'channel', 'accepted')", name="resolution"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    bill_date: Mapped[date] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    subject: Mapped[str] = mapped_column(String(10))
    reference: Mapped[str] = mapped_column(String(64))  # out_refund_no, else out_trade_no
    out_trade_no: Mapped[str] = mapped_column(String(64), index=True)
    out_refund_no: Mapped[str | None] = mapped_column(String(64))
    channel_trade_no: Mapped[str | None] = mapped_column(String(64))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("payment_attempts.id"), index=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"), index=True)
    # Ours and theirs side by side, as last seen by a run (NULL: that side has none).
    ours_amount_fen: Mapped[int | None]
    theirs_amount_fen: Mapped[int | None]
    ours_status: Mapped[str | None] = mapped_column(String(16))
    theirs_state: Mapped[str | None] = mapped_column(String(16))
    ours_fee_fen: Mapped[int | None]
    theirs_fee_fen: Mapped[int | None]
    occurred_at: Mapped[datetime | None]
    found_at: Mapped[datetime] = mapped_column(default=system_now)
    last_seen_at: Mapped[datetime] = mapped_column(default=system_now)
    cleared_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(10), default="open", index=True)
    resolution: Mapped[str | None] = mapped_column(String(10))
    note: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None]
    # Staff asked the channel (the job runs after commit, and may be lost with Redis):
    # when they asked, and what the last answer did and when.
    asked_at: Mapped[datetime | None]
    last_check_outcome: Mapped[str | None] = mapped_column(String(255))
    last_checked_at: Mapped[datetime | None]
