"""SQL expressions of time the analytics need, the same on SQLite and PostgreSQL.

Timestamps are stored as naive UTC. Beijing has kept UTC+8 without daylight saving
since 1991, so a fixed eight-hour shift gives the Beijing calendar day exactly. Days
are grouped as integers (days since 1970-01-01), not as text: sorting and hashing a
month of a million orders by a formatted string costs several times more.
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class epoch_seconds(FunctionElement):  # noqa: N801
    """Whole seconds since 1970 of a naive-UTC timestamp, truncated (as Python's
    `app.analytics.measures` counts them)."""

    type = BigInteger()
    name = "epoch_seconds"
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _epoch_seconds_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(epoch_seconds, "postgresql")
def _epoch_seconds_postgresql(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    # date_part's double precision, not EXTRACT's numeric: numeric arithmetic on three
    # timestamps of every paid attempt in a month cost the page some 50 ms at a million
    # orders. The floor stays exact: a timestamp has whole microseconds, and near 2e9
    # seconds a double is within 1.2e-7 of one, so x.999999 never rounds up to x + 1.
    return f"CAST(FLOOR(date_part('epoch', {compiler.process(element.clauses, **kw)})) AS BIGINT)"


BEIJING_OFFSET_SECONDS = 8 * 3600
SECONDS_A_DAY = 86400
_EPOCH = date(1970, 1, 1)


def beijing_day_number(moment: Any) -> ColumnElement[int]:
    """The Beijing calendar day of a naive-UTC timestamp column, as days since 1970."""
    return (epoch_seconds(moment) + BEIJING_OFFSET_SECONDS) // SECONDS_A_DAY


def day_text(day_number: int) -> str:
    """A `beijing_day_number` as ``YYYY-MM-DD``."""
    return (_EPOCH + timedelta(days=day_number)).isoformat()
