"""Alert episodes: opened when a condition starts firing, closed when it ends. Flush only.

Idempotent and safe for rounds running at once: an episode is opened by an insert that
skips a conflict with the open episode of its key (a partial unique index), and closed
by compare-and-set on ``cleared_at IS NULL``; only the round whose statement changed the
row reports the change, so each start and each end is announced once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.alerts.checks import Alert, Evaluation
from app.alerts.models import OPEN, AlertEpisode
from app.extensions import db


@dataclass(frozen=True)
class Change:
    episode_id: int
    key: str
    severity: str
    message: str


@dataclass(frozen=True)
class Changes:
    opened: tuple[Change, ...]
    cleared: tuple[Change, ...]


def open_episodes() -> dict[str, AlertEpisode]:
    """The open episode of each key that has one."""
    return {episode.key: episode for episode in db.session.scalars(
        select(AlertEpisode).where(AlertEpisode.cleared_at.is_(None)))}


def _open(alert: Alert, moment: datetime) -> int | None:
    """The new episode's id, or None when the key has an open one already."""
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(AlertEpisode).values(
        key=alert.key, kind=alert.kind, severity=alert.severity, message=alert.message[:255],
        fired_at=moment, last_seen_at=moment,
    ).on_conflict_do_nothing(index_elements=["key"], index_where=text(OPEN))
    return db.session.execute(statement.returning(AlertEpisode.id)).scalar_one_or_none()


def _close(episode_id: int, moment: datetime) -> bool:
    closed = db.session.execute(
        update(AlertEpisode)
        .where(AlertEpisode.id == episode_id, AlertEpisode.cleared_at.is_(None))
        .values(cleared_at=moment)
        .execution_options(synchronize_session=False)
    ).rowcount
    return closed == 1


def record_evaluation(evaluation: Evaluation, moment: datetime) -> Changes:
    """Open an episode for each alert firing without one, refresh the wording of those
    still firing, and close those whose condition ended (not those of a kind that could
    not be checked). Returns what this call opened and closed."""
    current = open_episodes()
    opened, cleared = [], []
    for alert in evaluation.firing:
        episode = current.get(alert.key)
        if episode is None:
            episode_id = _open(alert, moment)
            if episode_id is not None:
                opened.append(Change(episode_id, alert.key, alert.severity, alert.message))
        else:
            db.session.execute(
                update(AlertEpisode).where(AlertEpisode.id == episode.id, AlertEpisode.cleared_at.is_(None))
                .values(message=alert.message[:255], severity=alert.severity, last_seen_at=moment)
                .execution_options(synchronize_session=False))
    firing = {alert.key for alert in evaluation.firing}
    for key, episode in current.items():
        if key in firing or episode.kind in evaluation.unknown:
            continue
        if _close(episode.id, moment):
            cleared.append(Change(episode.id, key, episode.severity, episode.message))
    return Changes(tuple(opened), tuple(cleared))
