"""The daily rollup behind the analytics page: each past Beijing day's figures, computed
once by the live queries of `app.analytics.queries` and stored (`app.analytics.models`),
so the page reads a row per day instead of every order of the range.

What a day holds, and why the sums are exact:

- order counts (orders, started, paid, QR shown, QR opened, refunded; per channel; per
  course) on the day the order was *created*. An order counts on one day only, so a
  range's counts are the sums of its days' rows;
- the fund-flow median and p95 per channel and for all channels, and the ten slowest
  payments, on the day the attempt was *paid*: percentiles do not add up, but the
  charts draw them per day, which is what is stored; the range's slowest ten are among
  its days' slowest ten. The range-wide percentiles per channel are ranked live
  (`queries.fund_flow_by_channel`), from an index that holds the paid attempts' timeline.

Which days can still change: an order created on day D can be paid until ORDER_TTL_MINUTES
after it, and refunded until REFUND_WINDOW_DAYS after its payment; a refund asked for on
the window's last day may wait for a second approval and for the channel's retries, and a
payment the channels notify late (or reconciliation finds) is booked then. So a day is
*final* once SETTLING more has passed beyond those. `refresh_due` (the periodic tick)
recomputes the days not rolled up yet and the days not final (at most every STALE_AFTER);
a final day is recomputed only when the journal books something for one of its orders
later still (`late_bookings`: a refund whose second approval or retry took weeks, an
inbox row replayed after a fix). The page computes live the days without a row
(today always: it is never rolled up), so its figures equal the live queries' for every
day: today's are current, a recent day's are as of the last refresh.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, text, union_all

from app.analytics import queries
from app.analytics.measures import DurationSummary, SuccessRate
from app.analytics.models import (ALL_CHANNELS, AnalyticsDay, AnalyticsDayChannel, AnalyticsDayCourse,
                                  AnalyticsDayFundFlow, AnalyticsDaySlowest)
from app.analytics.queries import DayOutcomes, DayRange, FundFlowRow, FundFlowSummaries, SlowPayment
from app.analytics.sql import beijing_day_number
from app.catalog.models import Course
from app.checkout.models import Order
from app.config import CHANNELS
from app.extensions import db
from app.ledger.models import JournalEntry
from app.payments.models import PaymentAttempt
from app.timeutil import BEIJING, beijing, from_aware, now

# Beyond the order's deadline and the refund window: second approvals of refunds, the
# channels' refund retries, late notifications and reconciliation's look-back (3 days).
SETTLING = timedelta(days=7)
# A day that may still change is recomputed when its figures are older than this.
STALE_AFTER = timedelta(minutes=5)
# How long a transaction may hold a journal entry stamped before a refresh and commit it
# after: a final day a late booking touched is recomputed until it has been computed
# this long after the booking.
COMMIT_SLACK = timedelta(minutes=2)
# One set of queries covers at most this many days (the page's own longest range), and
# a round of the tick rolls up at most this many: a first run over years of history
# catches up newest first, a quarter per round.
RUN_DAYS = 92
# PostgreSQL advisory lock of the refresh (no other advisory lock in the app uses it):
# a concurrent tick skips its round rather than writing the same days twice.
LOCK_KEY = 11_0001
EPOCH = date(1970, 1, 1)
ONE_DAY = timedelta(days=1)


def beijing_today(moment: datetime) -> date:
    return beijing(moment).date()


def day_end(day: date) -> datetime:
    """The naive-UTC moment the Beijing ``day`` ends."""
    return from_aware(datetime.combine(day + ONE_DAY, time(), tzinfo=BEIJING))


def final_after(day: date) -> datetime:
    """From when nothing can change ``day``'s figures any more."""
    config = current_app.config
    return (day_end(day) + timedelta(minutes=config["ORDER_TTL_MINUTES"])
            + timedelta(days=config["REFUND_WINDOW_DAYS"]) + SETTLING)


def first_order_day() -> date | None:
    """The Beijing day of the first order (by ``ix_orders_created_at``); None: no orders."""
    first = db.session.scalar(select(func.min(Order.created_at)))
    return None if first is None else beijing_today(first)


# --- writing ---------------------------------------------------------------------------

def refresh(first: date, last: date) -> int:
    """Recompute the days ``first`` to ``last`` (today and later are left to the page),
    final or not; returns how many. Flushes; the caller commits. For the tick use
    `refresh_due`; this is for history written behind the app's back (bench seeding)."""
    moment = now()
    last = min(last, beijing_today(moment) - ONE_DAY)
    if first > last:
        return 0
    _lock(wait=True)
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    for run in _runs(days):
        _refresh_run(run, moment)
    return len(days)


def refresh_due(limit: int | None = RUN_DAYS) -> int:
    """Recompute the days that are due (`due_days`), the newest ``limit`` of them (all
    with None); returns how many. Flushes; the caller commits. While another transaction
    is refreshing (PostgreSQL), refreshes nothing: that one is doing the work."""
    if not _lock(wait=False):
        return 0
    moment = now()
    days = due_days(moment)
    if limit is not None:
        days = days[-limit:] if limit > 0 else []
    for run in _runs(days):
        _refresh_run(run, moment)
    return len(days)


def due_days(moment: datetime) -> list[date]:
    """The past days, from the first order's, that have no row, or a row that is not
    final and is older than STALE_AFTER or could now be made final, or a final row that
    a late booking changed (`late_bookings`); oldest first."""
    first = first_order_day()
    today = beijing_today(moment)
    if first is None or first >= today:
        return []
    known = {day: (final, computed_at) for day, final, computed_at in db.session.execute(
        select(AnalyticsDay.day, AnalyticsDay.final, AnalyticsDay.computed_at)
        .where(AnalyticsDay.day >= first, AnalyticsDay.day < today))}
    last_refresh = max((computed_at for _, computed_at in known.values()), default=None)
    late = late_bookings(last_refresh - COMMIT_SLACK) if last_refresh is not None else {}
    due = []
    for offset in range((today - first).days):
        day = first + timedelta(days=offset)
        row = known.get(day)
        if row is None:
            due.append(day)
        elif not row[0]:
            if row[1] <= moment - STALE_AFTER or moment >= final_after(day):
                due.append(day)
        elif day in late and row[1] <= late[day] + COMMIT_SLACK:
            due.append(day)
    return due


def late_bookings(since: datetime) -> dict[date, datetime]:
    """The days whose figures a booking since ``since`` may have changed, with the time
    of the latest such booking: the creation day of each order the journal posted an
    entry for (a payment, a refund, an orphan payment), and the payment day of its paid
    attempts. The journal is stamped with our clock as it books, however old the
    channel's own times are, so a callback processed or a refund completed weeks late
    (a second approval, a retried refund, a replayed inbox row) reopens a final day.
    Reads the entries since ``since`` by ``ix_journal_entries_created_at``."""
    booked = (select(JournalEntry.order_id, func.max(JournalEntry.created_at).label("booked_at"))
              .where(JournalEntry.created_at >= since, JournalEntry.order_id.is_not(None))
              .group_by(JournalEntry.order_id).subquery())
    created = select(beijing_day_number(Order.created_at), booked.c.booked_at).join(
        booked, booked.c.order_id == Order.id)
    paid = select(beijing_day_number(PaymentAttempt.succeeded_at), booked.c.booked_at).join(
        booked, booked.c.order_id == PaymentAttempt.order_id).where(
        PaymentAttempt.status == "succeeded", PaymentAttempt.succeeded_at.is_not(None))
    late: dict[date, datetime] = {}
    for number, booked_at in db.session.execute(union_all(created, paid)):
        day = _day(number)
        late[day] = max(booked_at, late.get(day, booked_at))
    return late


def forget(first: date, last: date) -> None:
    """Delete the rollup of the days ``first`` to ``last``: the page computes them live
    again until they are refreshed. Flushes nothing; the caller commits."""
    for model in (AnalyticsDay, AnalyticsDayChannel, AnalyticsDayCourse, AnalyticsDayFundFlow,
                  AnalyticsDaySlowest):
        db.session.execute(delete(model).where(model.day >= first, model.day <= last))


def _lock(wait: bool) -> bool:
    """Serialise refreshes. On PostgreSQL a transaction-scoped advisory lock; SQLite
    takes the database's write lock when the transaction begins (BEGIN IMMEDIATE)."""
    if db.engine.dialect.name != "postgresql":
        return True
    if wait:
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        return True
    return bool(db.session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LOCK_KEY}))


def _runs(days: list[date]) -> list[DayRange]:
    """Consecutive days as ranges of at most RUN_DAYS: one set of queries each."""
    runs: list[DayRange] = []
    for day in days:
        if runs and runs[-1].last + ONE_DAY == day and (day - runs[-1].first).days < RUN_DAYS:
            runs[-1] = DayRange(runs[-1].first, day)
        else:
            runs.append(DayRange(day, day))
    return runs


def _refresh_run(days: DayRange, moment: datetime) -> None:
    """Compute the days by the live queries, then replace their rows, in the caller's
    transaction: a reader sees the old rows or the new, never none or both."""
    outcomes = queries.order_outcomes(days)
    courses = queries.course_counts_by_day(days)
    flows = queries.fund_flow_summaries(days, ("day_channel", "day"))
    slowest = queries.slowest_by_day(days)
    forget(days.first, days.last)
    day_rows, channel_rows = [], []
    for day_label in days.days():
        day = date.fromisoformat(day_label)
        outcome = outcomes.get(day_label)
        day_rows.append({
            "day": day, "computed_at": moment, "final": moment >= final_after(day),
            "orders": outcome.orders if outcome else 0,
            "started": outcome.rate.started if outcome else 0,
            "succeeded": outcome.rate.succeeded if outcome else 0,
            "qr_shown": outcome.qr_shown if outcome else 0,
            "qr_opened": outcome.qr_opened if outcome else 0,
            "refunded": outcome.refunded if outcome else 0,
        })
        if outcome:
            channel_rows += [{"day": day, "channel": channel, "started": rate.started, "succeeded": rate.succeeded}
                             for channel, rate in outcome.rate_by_channel.items() if rate.started]
    course_rows = [{"day": _day(number), "course_id": course_id, "started": started, "succeeded": succeeded}
                   for number, course_id, started, succeeded in courses]
    flow_rows = [_flow_row(row) for row in flows.by_day_and_channel + flows.by_day]
    slowest_rows = [{"day": _day(number), "attempt_id": attempt_id, "total_seconds": total}
                    for number, attempt_id, total in slowest]
    for model, rows in ((AnalyticsDay, day_rows), (AnalyticsDayChannel, channel_rows),
                        (AnalyticsDayCourse, course_rows), (AnalyticsDayFundFlow, flow_rows),
                        (AnalyticsDaySlowest, slowest_rows)):
        if rows:
            db.session.execute(insert(model), rows)


def _day(number: int) -> date:
    return EPOCH + timedelta(days=number)


def _flow_row(row: FundFlowRow) -> dict:
    return {"day": date.fromisoformat(row.day), "channel": row.channel or ALL_CHANNELS,
            "paid": row.total_time.count,
            "channel_median": row.channel_time.median_seconds, "channel_p95": row.channel_time.p95_seconds,
            "system_median": row.system_time.median_seconds, "system_p95": row.system_time.p95_seconds,
            "total_median": row.total_time.median_seconds, "total_p95": row.total_time.p95_seconds}


# --- reading: the same answers as `queries`, from the rollup and the live days -------

@dataclass(frozen=True)
class Coverage:
    """Which days of a range come from the rollup and which are computed live: the days
    without a row, from the first order's day on (before it there is nothing to count).
    When those are not one run (a gap the tick has not filled yet) the live range spans
    them all, rolled-up days inside included, so the page never runs more queries."""

    days: DayRange
    live: DayRange | None

    def rolled_up(self, column: ColumnElement[date]) -> list[ColumnElement[bool]]:
        conditions = [column >= self.days.first, column <= self.days.last]
        if self.live is not None:
            conditions.append(or_(column < self.live.first, column > self.live.last))
        return conditions


def coverage(days: DayRange) -> Coverage:
    rolled = set(db.session.scalars(
        select(AnalyticsDay.day).where(AnalyticsDay.day >= days.first, AnalyticsDay.day <= days.last)))
    first = first_order_day()
    missing = [] if first is None else [
        day for day in (date.fromisoformat(label) for label in days.days()) if day >= first and day not in rolled]
    return Coverage(days, DayRange(missing[0], missing[-1]) if missing else None)


def order_outcomes(days: DayRange) -> dict[str, DayOutcomes]:
    """`queries.order_outcomes`, from the rollup where it can."""
    cover = coverage(days)
    channels: dict[date, dict[str, SuccessRate]] = {}
    for row in db.session.execute(select(AnalyticsDayChannel.day, AnalyticsDayChannel.channel,
                                         AnalyticsDayChannel.started, AnalyticsDayChannel.succeeded)
                                  .where(*cover.rolled_up(AnalyticsDayChannel.day))):
        channels.setdefault(row.day, {})[row.channel] = SuccessRate(row.started, row.succeeded)
    outcomes = {}
    for row in db.session.scalars(select(AnalyticsDay).where(*cover.rolled_up(AnalyticsDay.day),
                                                             AnalyticsDay.orders > 0)):
        by_channel = channels.get(row.day, {})
        outcomes[row.day.isoformat()] = DayOutcomes(
            orders=row.orders, rate=SuccessRate(row.started, row.succeeded),
            rate_by_channel={channel: by_channel.get(channel, SuccessRate(0, 0)) for channel in CHANNELS},
            qr_shown=row.qr_shown, qr_opened=row.qr_opened, refunded=row.refunded)
    if cover.live is not None:
        outcomes.update(queries.order_outcomes(cover.live))
    return dict(sorted(outcomes.items()))


def success_by_course(days: DayRange) -> list[tuple[int, str, SuccessRate]]:
    """`queries.success_by_course`, from the rollup where it can."""
    cover = coverage(days)
    totals: dict[int, tuple[str, SuccessRate]] = {}
    query = (select(AnalyticsDayCourse.course_id, Course.title_en, func.sum(AnalyticsDayCourse.started),
                    func.sum(AnalyticsDayCourse.succeeded))
             .join(Course, Course.id == AnalyticsDayCourse.course_id)
             .where(*cover.rolled_up(AnalyticsDayCourse.day))
             .group_by(AnalyticsDayCourse.course_id, Course.title_en))
    for course_id, title, started, succeeded in db.session.execute(query):
        totals[course_id] = (title, SuccessRate(int(started), int(succeeded)))
    if cover.live is not None:
        for course_id, title, rate in queries.success_by_course(cover.live):
            before = totals.get(course_id, (title, SuccessRate(0, 0)))[1]
            totals[course_id] = (title, SuccessRate(before.started + rate.started, before.succeeded + rate.succeeded))
    rows = [(course_id, title, rate) for course_id, (title, rate) in totals.items()]
    return sorted(rows, key=lambda row: (-row[2].started, row[0]))


def fund_flow_summaries(days: DayRange) -> FundFlowSummaries:
    """`queries.fund_flow_summaries`: per day from the rollup where it can; per channel
    over the range, ranked live (percentiles of days do not add up)."""
    cover = coverage(days)
    by_day_and_channel, by_day = [], []
    for row in db.session.scalars(select(AnalyticsDayFundFlow).where(*cover.rolled_up(AnalyticsDayFundFlow.day))):
        summary = FundFlowRow(
            row.day.isoformat(), None if row.channel == ALL_CHANNELS else row.channel,
            DurationSummary(row.paid, row.channel_median, row.channel_p95),
            DurationSummary(row.paid, row.system_median, row.system_p95),
            DurationSummary(row.paid, row.total_median, row.total_p95))
        (by_day if summary.channel is None else by_day_and_channel).append(summary)
    if cover.live is not None:
        live = queries.fund_flow_summaries(cover.live, ("day_channel", "day"))
        by_day_and_channel += live.by_day_and_channel
        by_day += live.by_day
    by_day_and_channel.sort(key=lambda summary: (summary.day, summary.channel))
    by_day.sort(key=lambda summary: summary.day)
    return FundFlowSummaries(by_day_and_channel, by_day, queries.fund_flow_by_channel(days))


def slowest_payments(days: DayRange, limit: int = queries.SLOWEST) -> list[SlowPayment]:
    """`queries.slowest_payments`, ranked among the rolled-up days' slowest and the live
    days' payments only. The rollup keeps a day's SLOWEST: a longer list is ranked live."""
    if limit > queries.SLOWEST:
        return queries.slowest_payments(days, limit)
    cover = coverage(days)
    candidates = list(db.session.scalars(select(AnalyticsDaySlowest.attempt_id)
                                         .where(*cover.rolled_up(AnalyticsDaySlowest.day))))
    among: ColumnElement[bool] = PaymentAttempt.id.in_(candidates)
    if cover.live is not None:
        start, end = cover.live.bounds
        among = or_(among, and_(PaymentAttempt.succeeded_at >= start, PaymentAttempt.succeeded_at < end))
    return queries.slowest_payments(days, limit, among)

