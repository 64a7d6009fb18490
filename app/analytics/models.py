"""Tables the analytics derive, never edited by hand and safe to drop: the daily rollup of
payment analytics, rebuilt from orders and payment attempts by `app.analytics.rollup`,
and the journal's money per day (`JournalDayTotal`, `app.analytics.money_flow`).

Every table is keyed by a Beijing day. The order counts (`AnalyticsDay`,
`AnalyticsDayChannel`, `AnalyticsDayCourse`) are on the day the *order was created*, so
a range's counts are the sums of its days'. The fund-flow rows (`AnalyticsDayFundFlow`,
`AnalyticsDaySlowest`) are on the day the attempt was *paid*, as the live queries count
them; percentiles do not add up, so they are stored per day as the charts draw them.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.timeutil import system_now

# The `channel` of a fund-flow row that covers every channel together.
ALL_CHANNELS = "all"


class AnalyticsDay(db.Model):
    """One Beijing day that has been rolled up, with zeros when it had no orders: the row
    is also the mark that the day needs no live computation."""

    __tablename__ = "analytics_days"

    day: Mapped[date] = mapped_column(primary_key=True)
    computed_at: Mapped[datetime]
    # Computed when nothing could change the day any more (`rollup.final_before`): the
    # periodic refresh leaves it alone from then on.
    final: Mapped[bool]
    orders: Mapped[int]
    started: Mapped[int]
    succeeded: Mapped[int]
    qr_shown: Mapped[int]
    qr_opened: Mapped[int]
    refunded: Mapped[int]


class AnalyticsDayChannel(db.Model):
    """Orders of the day that started a payment on a channel, and of those, paid there."""

    __tablename__ = "analytics_day_channels"

    day: Mapped[date] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10), primary_key=True)
    started: Mapped[int]
    succeeded: Mapped[int]


class AnalyticsDayCourse(db.Model):
    """Orders of the day holding a course that started a payment, and of those, paid."""

    __tablename__ = "analytics_day_courses"

    day: Mapped[date] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(primary_key=True)
    started: Mapped[int]
    succeeded: Mapped[int]


class AnalyticsDayFundFlow(db.Model):
    """The exact nearest-rank median and p95 of the three fund-flow times of the attempts
    paid that day, per channel and for every channel together (``channel = 'all'``)."""

    __tablename__ = "analytics_day_fund_flow"
    __table_args__ = (CheckConstraint("channel IN ('alipay', 'wechat', 'all')", name="channel"),)

    day: Mapped[date] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10), primary_key=True)
    paid: Mapped[int]
    channel_median: Mapped[int]
    channel_p95: Mapped[int]
    system_median: Mapped[int]
    system_p95: Mapped[int]
    total_median: Mapped[int]
    total_p95: Mapped[int]


class AnalyticsDaySlowest(db.Model):
    """The day's slowest paid attempts by total fund-flow time (ties: the lower id first).
    A range's slowest are among the union of its days' slowest, so the page ranks these
    few rows instead of every payment of the range."""

    __tablename__ = "analytics_day_slowest"

    day: Mapped[date] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(primary_key=True)
    total_seconds: Mapped[int]


class JournalDayTotal(db.Model):
    """One ended Beijing day's money figures (`app.analytics.money_flow` says which); derived
    from the journal and never changed once stored."""

    __tablename__ = "journal_day_totals"

    day: Mapped[date] = mapped_column(primary_key=True)
    sales_fen: Mapped[int] = mapped_column(BigInteger)
    refunds_fen: Mapped[int] = mapped_column(BigInteger)
    platform_revenue_fen: Mapped[int] = mapped_column(BigInteger)
    instructor_earnings_fen: Mapped[int] = mapped_column(BigInteger)
    computed_at: Mapped[datetime] = mapped_column(default=system_now)
