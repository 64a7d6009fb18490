"""Time in one place: stored UTC (naive in the database), shown in Beijing time.

`now()` is the clock every service uses; tests replace it through `app.config["CLOCK"]`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

BEIJING = ZoneInfo("Asia/Shanghai")


def system_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def now() -> datetime:
    """The current time as naive UTC, from the app's injectable clock when there is one."""
    if has_app_context():
        clock = current_app.config.get("CLOCK")
        if clock is not None:
            return clock()
    return system_now()


def as_aware(moment: datetime) -> datetime:
    """A stored naive-UTC datetime as an aware one (channels want aware datetimes)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def from_aware(moment: datetime) -> datetime:
    """An aware datetime from a channel as naive UTC for storage."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def beijing(moment: datetime) -> datetime:
    return as_aware(moment).astimezone(BEIJING)
