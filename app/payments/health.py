"""Channel health: failures in a sliding window rest a channel for a cool-down.

A failure is an answer we cannot rely on (a timeout, a 5xx, an unknown or unverifiable
answer), never a business refusal: a channel that says "no" is working. These functions
flush; the channel-call boundary commits them in a transaction of their own.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.payments.models import ChannelHealth
from app.timeutil import now


@dataclass(frozen=True)
class HealthView:
    channel: str
    healthy: bool
    failures_in_window: int
    unhealthy_until: datetime | None
    last_error: str | None
    last_failure_at: datetime | None
    last_success_at: datetime | None


def _row_for_update(channel: str) -> ChannelHealth:
    query = select(ChannelHealth).where(ChannelHealth.channel == channel).with_for_update()
    row = db.session.scalar(query)
    if row is not None:
        return row
    try:
        with db.session.begin_nested():
            db.session.add(ChannelHealth(channel=channel, failures_in_window=0))
    except IntegrityError:
        pass  # created concurrently: read theirs
    row = db.session.scalar(query.execution_options(populate_existing=True))
    assert row is not None
    return row


def record_failure(channel: str, error: str) -> bool:
    """Count one failure; True when it makes the channel unhealthy."""
    config = current_app.config
    moment = now()
    window = timedelta(seconds=config["CHANNEL_FAILURE_WINDOW_SECONDS"])
    row = _row_for_update(channel)
    if row.window_started_at is None or moment - row.window_started_at > window:
        row.window_started_at = moment
        row.failures_in_window = 0
    row.failures_in_window += 1
    row.last_failure_at = moment
    row.last_error = error[:255]
    tripped = row.failures_in_window >= config["CHANNEL_FAILURE_THRESHOLD"]
    if tripped:
        row.unhealthy_until = moment + timedelta(seconds=config["CHANNEL_COOLDOWN_SECONDS"])
        # A fresh window after the rest: one more failure must not re-trip at once.
        row.window_started_at = None
        row.failures_in_window = 0
    db.session.flush()
    return tripped


def record_success(channel: str) -> None:
    """A reliable answer clears the failure count (but not a cool-down under way)."""
    row = db.session.get(ChannelHealth, channel)
    if row is not None and row.failures_in_window == 0 and row.last_success_at is not None:
        # Nothing to clear: skip the write, as this runs after every channel call.
        if now() - row.last_success_at < timedelta(minutes=1):
            return
    row = _row_for_update(channel)
    row.failures_in_window = 0
    row.window_started_at = None
    row.last_success_at = now()
    db.session.flush()


def is_healthy(channel: str, moment: datetime | None = None) -> bool:
    row = db.session.get(ChannelHealth, channel)
    return row is None or row.unhealthy_until is None or (moment or now()) >= row.unhealthy_until


def health_report(channels: tuple[str, ...]) -> list[HealthView]:
    rows = {row.channel: row for row in db.session.scalars(select(ChannelHealth))}
    moment = now()
    report = []
    for channel in channels:
        row = rows.get(channel)
        report.append(
            HealthView(
                channel=channel,
                healthy=is_healthy(channel, moment),
                failures_in_window=row.failures_in_window if row else 0,
                unhealthy_until=row.unhealthy_until if row else None,
                last_error=row.last_error if row else None,
                last_failure_at=row.last_failure_at if row else None,
                last_success_at=row.last_success_at if row else None,
            )
        )
    return report
