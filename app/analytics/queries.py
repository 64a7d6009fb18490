"""The measures of `app.analytics.measures`, computed in the database over a range of
Beijing days: grouped and ranked in SQL, so a million orders never come to Python.

Which rows each measure reads, and the indexes it relies on:

- success rate and funnel, in one query: orders *created* in the range
  (``ix_orders_created_at``) with their attempts, themselves read by a range of their
  creation time (``ix_payment_attempts_created_at``); an order counts on the Beijing day
  it was created, whenever it was paid, so a day's numerator and denominator are the
  same orders;
- fund-flow time: attempts *paid* in the range (``ix_payment_attempts_paid_timeline``,
  which holds every column the times need, so the table itself is not read), on the
  Beijing day the channel says they were paid. Attempts booked before the timeline was
  recorded (no ``booked_at``) are left out.

The page reads most of these from the daily rollup (`app.analytics.rollup`); these
queries compute the days it has not rolled up, and the rollup itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import Row, Select, Subquery, and_, case, func, literal, literal_column, or_, select, text, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from app.analytics.measures import DurationSummary, FunnelStep, SuccessRate, funnel
from app.analytics.sql import beijing_day_number, day_text, epoch_seconds
from app.catalog.models import Course
from app.checkout.models import Order, OrderLine
from app.config import CHANNELS
from app.extensions import db
from app.payments.models import PaymentAttempt
from app.timeutil import BEIJING, from_aware

REFUNDED_STATUSES = ("partially_refunded", "refunded")
SLOWEST = 10


@dataclass(frozen=True)
class DayRange:
    """Beijing days ``first`` to ``last``, both included."""

    first: date
    last: date

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """The naive-UTC interval [start, end) the days cover."""
        start = from_aware(datetime.combine(self.first, time(), tzinfo=BEIJING))
        return start, start + timedelta(days=(self.last - self.first).days + 1)

    def days(self) -> list[str]:
        count = (self.last - self.first).days + 1
        return [(self.first + timedelta(days=offset)).isoformat() for offset in range(count)]


def _orders_created_in(days: DayRange) -> list:
    start, end = days.bounds
    return [Order.created_at >= start, Order.created_at < end]


def _attempts_of_orders_created_in(days: DayRange) -> list:
    """A bound on when the attempts of the range's orders were made. An attempt is made
    while its order is pending, so within ORDER_TTL_MINUTES of it: bounding the attempts'
    own creation time lets the database read both tables by a range of their indexes
    and hash-join them, instead of probing the attempts once per order."""
    start, end = days.bounds
    lag = max(timedelta(days=1), timedelta(minutes=current_app.config["ORDER_TTL_MINUTES"]))
    return [PaymentAttempt.created_at >= start, PaymentAttempt.created_at < end + lag]


@dataclass(frozen=True)
class DayOutcomes:
    """What became of the orders created on one Beijing day (see `order_outcomes`)."""

    orders: int
    rate: SuccessRate
    rate_by_channel: dict[str, SuccessRate]
    qr_shown: int
    qr_opened: int
    refunded: int


def order_outcomes(days: DayRange) -> dict[str, DayOutcomes]:
    """Per Beijing day of the range (by order creation), in one pass over the orders and
    their attempts: the success rate overall and per channel, and the funnel's counts.

    An order *started a payment* when it has an attempt; *succeeded* when one of its
    attempts did; on a channel, when it has an attempt (or a succeeded one) there, so an
    order that switched channel counts on both. "QR opened" counts an order when the
    channel told us of a scan, or when it was paid (nobody pays without opening).
    Orders paid wholly from the prepaid balance are left out: they had nothing for a
    channel to take. Days without orders are missing.
    """
    flag = lambda condition: func.max(case((condition, 1), else_=0))  # noqa: E731
    has_attempt = PaymentAttempt.id.is_not(None)
    succeeded = PaymentAttempt.status == "succeeded"
    per_order = (
        select(
            beijing_day_number(Order.created_at).label("day"),
            Order.status.label("status"),
            flag(has_attempt).label("started"),
            flag(succeeded).label("succeeded"),
            *(flag(PaymentAttempt.channel == channel).label(f"started_{channel}") for channel in CHANNELS),
            *(flag(and_(PaymentAttempt.channel == channel, succeeded)).label(f"succeeded_{channel}")
              for channel in CHANNELS),
            flag(PaymentAttempt.qr_issued_at.is_not(None)).label("shown"),
            flag(or_(PaymentAttempt.channel_opened_at.is_not(None), succeeded)).label("opened"),
        )
        .select_from(Order)
        # The attempts' range goes in the join: orders without an attempt stay in.
        .outerjoin(PaymentAttempt, and_(PaymentAttempt.order_id == Order.id,
                                        *_attempts_of_orders_created_in(days)))
        # Orders the balance paid whole never needed a channel: no QR to show or scan.
        .where(*_orders_created_in(days), Order.total_fen > Order.wallet_paid_fen + Order.wallet_bonus_fen)
        .group_by(Order.id, Order.status, Order.created_at)
        .subquery()
    )
    columns = per_order.c
    refunded = case((and_(columns.succeeded == 1, columns.status.in_(REFUNDED_STATUSES)), 1), else_=0)
    sums = ["started", "succeeded", *(f"started_{c}" for c in CHANNELS), *(f"succeeded_{c}" for c in CHANNELS),
            "shown", "opened"]
    query = (select(columns.day, func.count(), *(func.sum(columns[name]) for name in sums), func.sum(refunded))
             .group_by(columns.day))
    outcomes = {}
    for row in db.session.execute(query):
        day, orders, *totals = row
        counted = dict(zip([*sums, "refunded"], (int(total or 0) for total in totals)))
        outcomes[day_text(day)] = DayOutcomes(
            orders=orders,
            rate=SuccessRate(counted["started"], counted["succeeded"]),
            rate_by_channel={c: SuccessRate(counted[f"started_{c}"], counted[f"succeeded_{c}"]) for c in CHANNELS},
            qr_shown=counted["shown"], qr_opened=counted["opened"], refunded=counted["refunded"],
        )
    return outcomes


def rates_by_day(outcomes: dict[str, DayOutcomes], channel: str | None = None) -> dict[str, SuccessRate]:
    """Each day's success rate, overall or on one channel; days when no order started a
    payment (there) are missing."""
    rates = {day: outcome.rate if channel is None else outcome.rate_by_channel[channel]
             for day, outcome in outcomes.items()}
    return {day: rate for day, rate in rates.items() if rate.started}


def rates_by_channel(outcomes: dict[str, DayOutcomes]) -> dict[str, SuccessRate]:
    """The range's success rate per channel: a sum of the days', as each order counts on
    one day only. Channels no order started a payment on are missing."""
    rates = {}
    for channel in CHANNELS:
        per_day = [outcome.rate_by_channel[channel] for outcome in outcomes.values()]
        rate = SuccessRate(sum(r.started for r in per_day), sum(r.succeeded for r in per_day))
        if rate.started:
            rates[channel] = rate
    return rates


def funnel_of(outcomes: dict[str, DayOutcomes]) -> list[FunnelStep]:
    """The funnel of the range's orders: created, QR shown, QR opened, paid, refunded."""
    days = outcomes.values()
    return funnel([sum(o.orders for o in days), sum(o.qr_shown for o in days), sum(o.qr_opened for o in days),
                   sum(o.rate.succeeded for o in days), sum(o.refunded for o in days)])


def success_by_day(days: DayRange, channel: str | None = None) -> dict[str, SuccessRate]:
    return rates_by_day(order_outcomes(days), channel)


def success_by_channel(days: DayRange) -> dict[str, SuccessRate]:
    return rates_by_channel(order_outcomes(days))


def funnel_counts(days: DayRange) -> list[FunnelStep]:
    return funnel_of(order_outcomes(days))


def success_by_course(days: DayRange) -> list[tuple[int, str, SuccessRate]]:
    """(course id, title, rate) per course sold in the range's orders, most orders first.
    An order of several courses counts once for each."""
    query = _course_counts(days, OrderLine.course_id, Course.title_en).join(Course, Course.id == OrderLine.course_id)
    rows = [(row[0], row[1], SuccessRate(started=row[2], succeeded=row[3])) for row in db.session.execute(query)]
    return sorted(rows, key=lambda row: (-row[2].started, row[0]))


def course_counts_by_day(days: DayRange) -> list[tuple[int, int, int, int]]:
    """(Beijing day number, course id, orders started, orders paid) per day of order
    creation and course: `success_by_course` a day at a time, for the rollup."""
    query = _course_counts(days, beijing_day_number(Order.created_at).label("day"), OrderLine.course_id)
    return [(row[0], row[1], row[2], row[3]) for row in db.session.execute(query)]


def _course_counts(days: DayRange, *keys: ColumnElement) -> Select:
    succeeded_order = case((PaymentAttempt.status == "succeeded", PaymentAttempt.order_id))
    return (select(*keys, func.count(PaymentAttempt.order_id.distinct()), func.count(succeeded_order.distinct()))
            .select_from(PaymentAttempt)
            .join(Order, Order.id == PaymentAttempt.order_id)
            .join(OrderLine, OrderLine.order_id == Order.id)
            .where(*_orders_created_in(days), *_attempts_of_orders_created_in(days))
            .group_by(*keys))


def _durations(days: DayRange) -> Select:
    """Per paid attempt in the range: its payment day, channel and fund-flow seconds."""
    start, end = days.bounds
    opened = func.coalesce(PaymentAttempt.channel_opened_at, PaymentAttempt.qr_issued_at)
    paid = epoch_seconds(PaymentAttempt.succeeded_at)
    return select(
        PaymentAttempt.id.label("attempt_id"),
        beijing_day_number(PaymentAttempt.succeeded_at).label("day"),
        PaymentAttempt.channel.label("channel"),
        (paid - epoch_seconds(opened)).label("channel_seconds"),
        (epoch_seconds(PaymentAttempt.booked_at) - paid).label("system_seconds"),
        (epoch_seconds(PaymentAttempt.booked_at) - epoch_seconds(opened)).label("total_seconds"),
    ).where(
        PaymentAttempt.status == "succeeded",
        PaymentAttempt.succeeded_at >= start, PaymentAttempt.succeeded_at < end,
        PaymentAttempt.booked_at.is_not(None), opened.is_not(None),
    )


MEASURES = ("channel_seconds", "system_seconds", "total_seconds")
FRACTIONS = (literal_column("0.5"), literal_column("0.95"))  # median and p95, for percentile_disc


@dataclass(frozen=True)
class FundFlowRow:
    day: str | None  # None: the whole range
    channel: str | None  # None: every channel
    channel_time: DurationSummary
    system_time: DurationSummary
    total_time: DurationSummary


def fund_flow_summary(days: DayRange, by_day: bool = True, by_channel: bool = True) -> list[FundFlowRow]:
    """Median and p95 (nearest rank) of the three times per day and / or channel."""
    summaries = fund_flow_summaries(days)
    if by_day and by_channel:
        return summaries.by_day_and_channel
    if by_day:
        return summaries.by_day
    if by_channel:
        return summaries.by_channel
    raise ValueError("group by day, channel or both")


@dataclass(frozen=True)
class FundFlowSummaries:
    by_day_and_channel: list[FundFlowRow]
    by_day: list[FundFlowRow]  # every channel together
    by_channel: list[FundFlowRow]  # the whole range


# The groupings `fund_flow_summaries` can compute, as FundFlowSummaries holds them.
GROUPINGS = ("day_channel", "day", "channel")


def fund_flow_summaries(days: DayRange, groupings: tuple[str, ...] = GROUPINGS) -> FundFlowSummaries:
    """The fund-flow medians and p95s per day and channel, per day and per channel (or
    those of ``groupings`` only; the others are left empty).

    PostgreSQL computes them in one pass with ``percentile_disc``, which is nearest rank
    (the first value whose cumulative share reaches the fraction), over grouping sets;
    SQLite, which has neither, ranks with window functions, once per grouping."""
    durations = _durations(days).subquery()
    day, channel = durations.c.day, durations.c.channel
    keys = {"day_channel": [day, channel], "day": [day], "channel": [channel]}
    if db.engine.dialect.name == "postgresql":
        if "day_channel" in groupings:
            return _summaries_by_grouping_sets(durations, [keys[grouping] for grouping in groupings])
        return FundFlowSummaries(*(_percentiles(durations, keys[grouping]) if grouping in groupings else []
                                   for grouping in GROUPINGS))
    return FundFlowSummaries(*(_ranked_summary(durations, keys[grouping]) if grouping in groupings else []
                               for grouping in GROUPINGS))


def fund_flow_by_channel(days: DayRange) -> list[FundFlowRow]:
    """Per channel over the whole range. Percentiles do not add up over days, so the
    rollup cannot give these: they are ranked from the range's paid attempts, which
    ``ix_payment_attempts_paid_timeline`` holds whole (an index-only read)."""
    return fund_flow_summaries(days, ("channel",)).by_channel


# Memory for the sorts of `_percentiles`: a month's paid attempts per channel, three
# times over, spill to disk under PostgreSQL's default 4 MB and take twice as long.
PERCENTILE_WORK_MEM = "32MB"


def _percentiles(durations: Subquery, keys: list) -> list[FundFlowRow]:
    """`_summaries_by_grouping_sets` for one grouping: a plain GROUP BY, and each time
    sorted once for both its percentiles (``percentile_disc`` of an array of fractions)."""
    db.session.execute(text(f"SET LOCAL work_mem = '{PERCENTILE_WORK_MEM}'"))
    fractions = postgresql.array(FRACTIONS)
    query = (select(*keys, func.count(),
                    *(func.percentile_disc(fractions).within_group(durations.c[name]) for name in MEASURES))
             .group_by(*keys).order_by(*keys))
    rows = []
    for row in db.session.execute(query):
        row_day, row_channel, (count, *pairs) = _split_keys(row, keys)
        rows.append(_row(row_day, row_channel, count, [value for pair in pairs for value in pair]))
    return rows


def _split_keys(row: Row, keys: list) -> tuple[int | None, str | None, list]:
    """A grouped row's day and channel (None for a key not grouped by) and the rest."""
    values = list(row)
    names = [column.name for column in keys]
    row_day = values.pop(0) if "day" in names else None
    row_channel = values.pop(0) if "channel" in names else None
    return row_day, row_channel, values


def _summaries_by_grouping_sets(durations: Subquery, sets: list[list]) -> FundFlowSummaries:
    day, channel = durations.c.day, durations.c.channel
    query = select(
        day, channel, func.grouping(day), func.grouping(channel), func.count(),
        *(func.percentile_disc(fraction).within_group(durations.c[name])
          for name in MEASURES for fraction in FRACTIONS),
    ).group_by(func.grouping_sets(*(tuple_(*keys) for keys in sets)))
    found = FundFlowSummaries([], [], [])
    for row in db.session.execute(query):
        row_day, row_channel, day_summed, channel_summed, n, *values = row
        summary = _row(None if day_summed else row_day, None if channel_summed else row_channel, n, values)
        (found.by_channel if day_summed else found.by_day if channel_summed else found.by_day_and_channel
         ).append(summary)
    for rows in (found.by_day_and_channel, found.by_day, found.by_channel):
        rows.sort(key=lambda summary: (summary.day or "", summary.channel or ""))
    return found


def _ranked_summary(durations: Subquery, keys: list) -> list[FundFlowRow]:
    window = {"partition_by": keys}
    ranked = select(
        *keys, *(durations.c[name] for name in MEASURES),
        func.count().over(**window).label("n"),
        *(func.row_number().over(order_by=durations.c[name], **window).label(f"rank_{name}")
          for name in MEASURES),
    ).subquery()
    count = ranked.c.n

    def at_rank(name: str, percent: int) -> ColumnElement[int]:
        # Nearest rank: ceil(percent × n / 100), in integers.
        rank = (literal(percent) * count + 99) // 100
        return func.max(case((ranked.c[f"rank_{name}"] == rank, ranked.c[name])))

    group = [ranked.c[column.name] for column in keys]
    query = (select(*group, func.max(count), *(at_rank(name, percent) for name in MEASURES for percent in (50, 95)))
             .group_by(*group).order_by(*group))
    rows = []
    for row in db.session.execute(query):
        row_day, row_channel, (count, *values) = _split_keys(row, keys)
        rows.append(_row(row_day, row_channel, count, values))
    return rows


def _row(day_number: int | None, channel: str | None, n: int, values: list[int]) -> FundFlowRow:
    """A summary from the count and the six figures: median and p95 of each time."""
    summaries = [DurationSummary(n, values[index], values[index + 1]) for index in (0, 2, 4)]
    return FundFlowRow(None if day_number is None else day_text(day_number), channel, *summaries)


@dataclass(frozen=True)
class SlowPayment:
    attempt_id: int
    order_no: str
    channel: str
    created_at: datetime  # the order
    qr_issued_at: datetime | None
    channel_opened_at: datetime | None
    succeeded_at: datetime
    booked_at: datetime
    channel_seconds: int
    system_seconds: int
    total_seconds: int


def slowest_payments(days: DayRange, limit: int = SLOWEST,
                     among: ColumnElement[bool] | None = None) -> list[SlowPayment]:
    """The paid attempts of the range with the longest total fund-flow time; only those
    ``among`` allows, when given (the rollup's candidates)."""
    durations = _durations(days)
    if among is not None:
        durations = durations.where(among)
    durations = durations.subquery()
    query = (
        select(PaymentAttempt.id, Order.order_no, PaymentAttempt.channel, Order.created_at,
               PaymentAttempt.qr_issued_at, PaymentAttempt.channel_opened_at,
               PaymentAttempt.succeeded_at, PaymentAttempt.booked_at,
               durations.c.channel_seconds, durations.c.system_seconds, durations.c.total_seconds)
        .select_from(durations)
        .join(PaymentAttempt, PaymentAttempt.id == durations.c.attempt_id)
        .join(Order, Order.id == PaymentAttempt.order_id)
        .order_by(durations.c.total_seconds.desc(), PaymentAttempt.id)
        .limit(limit)
    )
    return [SlowPayment(*row) for row in db.session.execute(query)]


def slowest_by_day(days: DayRange, limit: int = SLOWEST) -> list[tuple[int, int, int]]:
    """(Beijing day number, attempt id, total seconds) of each payment day's ``limit``
    slowest paid attempts, in `slowest_payments`' order (longest first, then lowest id)."""
    durations = _durations(days).subquery()
    rank = func.row_number().over(partition_by=durations.c.day,
                                  order_by=(durations.c.total_seconds.desc(), durations.c.attempt_id))
    ranked = select(durations.c.day, durations.c.attempt_id, durations.c.total_seconds, rank.label("rank")).subquery()
    query = select(ranked.c.day, ranked.c.attempt_id, ranked.c.total_seconds).where(ranked.c.rank <= limit)
    return [(row[0], row[1], row[2]) for row in db.session.execute(query)]
