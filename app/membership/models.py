"""Membership: every published course open to the member for a period, bought as an
order with no course lines.

Of each membership payment net of tax, ``pool_bps`` goes to an instructor pool; month by
month the pool is shared between the courses by the lessons members opened in them
(`MembershipPool`, `MembershipPoolShare`).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.timeutil import system_now


class MembershipPlan(db.Model):
    __tablename__ = "membership_plans"
    __table_args__ = (
        CheckConstraint("price_fen > 0", name="price_fen"),
        CheckConstraint("period_days > 0", name="period_days"),
        CheckConstraint("pool_bps BETWEEN 0 AND 10000", name="pool_bps"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title_zh: Mapped[str] = mapped_column(String(120))
    title_en: Mapped[str] = mapped_column(String(120))
    price_fen: Mapped[int]
    period_days: Mapped[int]
    # The instructors' part of each payment net of tax, in basis points.
    pool_bps: Mapped[int]
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=system_now)


class Membership(db.Model):
    """One bought period. Plan terms are copied when ordered; ``starts_at``, ``ends_at``
    and ``pool_fen`` are set when the order is paid, and only then does it grant access."""

    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint("period_days > 0", name="period_days"),
        CheckConstraint("pool_bps BETWEEN 0 AND 10000", name="pool_bps"),
        CheckConstraint("pool_fen IS NULL OR pool_fen >= 0", name="pool_fen"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("membership_plans.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    title: Mapped[str] = mapped_column(String(120))
    period_days: Mapped[int]
    pool_bps: Mapped[int]
    pool_fen: Mapped[int | None]
    starts_at: Mapped[datetime | None] = mapped_column(index=True)
    ends_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=system_now)

    plan: Mapped[MembershipPlan] = relationship()


class MembershipPool(db.Model):
    """A month's pool, shared out once (``period`` is unique). ``entry_id`` is the journal
    entry that moved it: to the instructors, or, in a month without a lesson opened by a
    member, to platform revenue. None when the month had no pool at all."""

    __tablename__ = "membership_pools"
    __table_args__ = (
        CheckConstraint("pool_fen >= 0", name="pool_fen"),
        CheckConstraint("opens >= 0", name="opens"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7), unique=True)
    pool_fen: Mapped[int]
    opens: Mapped[int]
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"))
    memo: Mapped[str] = mapped_column(String(255), default="")
    allocated_at: Mapped[datetime] = mapped_column(default=system_now)


class MembershipPoolShare(db.Model):
    """One instructor's part of a month's pool for one course: what their statement line
    shows. The parts of a month sum to its pool exactly."""

    __tablename__ = "membership_pool_shares"
    __table_args__ = (
        UniqueConstraint("pool_id", "course_id", "instructor_id"),
        CheckConstraint("share_fen >= 0", name="share_fen"),
        CheckConstraint("opens > 0", name="opens"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("membership_pools.id"), index=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    instructor_id: Mapped[int] = mapped_column(ForeignKey("instructors.id"), index=True)
    course_title: Mapped[str] = mapped_column(String(120))
    opens: Mapped[int]
    course_fen: Mapped[int]  # the course's part of the pool, before co-authors split it
    share_fen: Mapped[int]
