"""Statement periods: calendar months in Beijing time, as instructors count them."""
from __future__ import annotations

import re
from datetime import date, datetime, time

from app.timeutil import BEIJING, beijing, from_aware

PERIOD_RE = re.compile(r"^(20[0-9]{2})-(0[1-9]|1[0-2])$")


def parse_period(text: str) -> tuple[int, int] | None:
    match = PERIOD_RE.fullmatch(text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def period_of(moment: datetime) -> str:
    """The month a stored (naive UTC) moment falls in, in Beijing time."""
    local = beijing(moment)
    return f"{local.year:04d}-{local.month:02d}"


def next_period(period: str) -> str:
    year, month = parse_period(period) or (0, 0)
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def previous_period(period: str) -> str:
    year, month = parse_period(period) or (0, 0)
    return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"


def first_day(period: str) -> date:
    year, month = parse_period(period) or (0, 0)
    return date(year, month, 1)


def last_day(period: str) -> date:
    return date.fromordinal(first_day(next_period(period)).toordinal() - 1)


def period_start(period: str) -> datetime:
    """The first moment of the month, as naive UTC (how moments are stored)."""
    return from_aware(datetime.combine(first_day(period), time(), tzinfo=BEIJING))


def period_end(period: str) -> datetime:
    """The first moment after the month, as naive UTC."""
    return period_start(next_period(period))


def periods_between(first: str, last: str) -> list[str]:
    """Every period from ``first`` to ``last``, both included, in order."""
    periods = []
    current = first
    while current <= last:
        periods.append(current)
        current = next_period(current)
    return periods
