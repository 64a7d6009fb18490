"""The two measures of issue 11 and the funnel, as pure functions with exact arithmetic.

Definitions (README "Payment analytics" says the same for readers of the page):

- **Success rate**: of the orders that started a payment (have at least one payment
  attempt, i.e. a QR code was asked for), those whose payment succeeded (an attempt
  succeeded). Kept as an integer numerator and denominator; shown in basis points
  (1/100 of a percent), rounded half up, so 950 of 1000 is exactly 9500 bp, "95.00 %".
- **Fund-flow time** of one paid attempt, in whole seconds:
  channel time = "QR opened" → the channel's stated payment time;
  system time = the channel's payment time → our booking (ledger entry and grant);
  total = channel + system.
  "QR opened" is the channel's own trade-creation time where it tells us one (Alipay's
  ``gmt_create``, the payer's scan). WeChat Pay Native states no scan time, and Alipay's
  query answer none either, so there it falls back to when we showed the QR
  (``qr_issued_at``): that channel time includes the payer's time to pick up the phone.
- **Percentiles** are nearest-rank: the p-th percentile of n sorted values is the value
  at rank ceil(p × n / 100) (1-based). It is always one of the values, never an
  interpolation; the median is p = 50, so for an even n it is the lower middle value.
- **Funnel**: order created → QR shown → QR opened → paid → refunded; each step's
  drop-off is the share of the previous step's orders that did not reach it.

No floats: rates are integer basis points, durations integer seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Sequence

BASIS_POINTS = 10_000  # 100 %


def ratio_basis_points(part: int, whole: int) -> int | None:
    """``part / whole`` in basis points, rounded half up; None when ``whole`` is 0."""
    if whole <= 0:
        return None
    return (2 * part * BASIS_POINTS + whole) // (2 * whole)


def percent_text(basis_points: int | None) -> str:
    """9500 -> "95.00 %"; None (no orders) -> "—"."""
    if basis_points is None:
        return "—"
    return f"{Decimal(basis_points).scaleb(-2).quantize(Decimal('0.01'), ROUND_HALF_UP)} %"


@dataclass(frozen=True)
class SuccessRate:
    started: int  # orders that started a payment
    succeeded: int  # of those, orders whose payment succeeded

    @property
    def basis_points(self) -> int | None:
        return ratio_basis_points(self.succeeded, self.started)

    @property
    def percent(self) -> str:
        return percent_text(self.basis_points)


def success_rate(attempt_statuses_by_order: dict[int, Sequence[str]]) -> SuccessRate:
    """The success rate of orders given each order's attempt statuses; an order with no
    attempt never started a payment and is not counted."""
    started = [statuses for statuses in attempt_statuses_by_order.values() if statuses]
    return SuccessRate(started=len(started),
                       succeeded=sum(1 for statuses in started if "succeeded" in statuses))


def trend(rates: Sequence[int | None]) -> list[int | None]:
    """Day-on-day change in basis points; None where either day had no orders."""
    changes: list[int | None] = [None]
    for before, after in zip(rates, rates[1:]):
        changes.append(None if before is None or after is None else after - before)
    return changes[: len(rates)]


@dataclass(frozen=True)
class FundFlow:
    """One paid attempt's fund-flow time, in whole seconds."""

    channel_seconds: int
    system_seconds: int

    @property
    def total_seconds(self) -> int:
        return self.channel_seconds + self.system_seconds


def _epoch_seconds(moment: datetime) -> int:
    # Whole seconds, truncated per timestamp, as the SQL in `queries` computes them.
    return (moment.replace(tzinfo=None) - datetime(1970, 1, 1)) // timedelta(seconds=1)


def fund_flow(opened_at: datetime | None, qr_issued_at: datetime | None,
              paid_at: datetime, booked_at: datetime) -> FundFlow | None:
    """The fund-flow time of one attempt from its naive-UTC timeline. ``opened_at`` is the
    channel's opening time, or None when it gave none: then "QR opened" is the QR's issue
    time. None when neither is known."""
    opened = opened_at or qr_issued_at
    if opened is None:
        return None
    paid = _epoch_seconds(paid_at)
    return FundFlow(channel_seconds=paid - _epoch_seconds(opened),
                    system_seconds=_epoch_seconds(booked_at) - paid)


def nearest_rank(percent: int, count: int) -> int:
    """The 1-based rank of the ``percent``-th percentile among ``count`` sorted values:
    ceil(percent × count / 100), at least 1."""
    if count <= 0:
        raise ValueError("no values")
    return max(1, (percent * count + 99) // 100)


def percentile(values: Sequence[int], percent: int) -> int | None:
    """The nearest-rank ``percent``-th percentile of ``values``; None for no values."""
    if not values:
        return None
    return sorted(values)[nearest_rank(percent, len(values)) - 1]


@dataclass(frozen=True)
class DurationSummary:
    count: int
    median_seconds: int | None
    p95_seconds: int | None


def summarize(seconds: Sequence[int]) -> DurationSummary:
    return DurationSummary(len(seconds), percentile(seconds, 50), percentile(seconds, 95))


FUNNEL_STEPS = ("created", "qr_shown", "qr_opened", "paid", "refunded")
FUNNEL_LABELS = {
    "created": "Order created",
    "qr_shown": "QR shown",
    "qr_opened": "QR opened",
    "paid": "Paid",
    "refunded": "Refunded",
}


@dataclass(frozen=True)
class FunnelStep:
    step: str
    orders: int
    # Of the previous step's orders, the share that did not reach this one (basis
    # points); None for the first step, or when the previous step had no orders.
    drop_off_basis_points: int | None


def funnel(counts: Sequence[int]) -> list[FunnelStep]:
    """The funnel from the order count at each of FUNNEL_STEPS, in order."""
    if len(counts) != len(FUNNEL_STEPS):
        raise ValueError(f"expected {len(FUNNEL_STEPS)} counts, got {len(counts)}")
    steps = [FunnelStep(FUNNEL_STEPS[0], counts[0], None)]
    for step, before, after in zip(FUNNEL_STEPS[1:], counts, counts[1:]):
        steps.append(FunnelStep(step, after, ratio_basis_points(before - after, before)))
    return steps


def duration_text(seconds: int | None) -> str:
    """5400 -> "1h 30m 00s"; 75 -> "1m 15s"; None -> "—"."""
    if seconds is None:
        return "—"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"
