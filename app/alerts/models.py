"""One row per alert episode: from when a condition started firing to when it ended."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

OPEN = "cleared_at IS NULL"


class AlertEpisode(db.Model):
    """An alert that fired at ``fired_at`` and, once its condition ended, cleared at
    ``cleared_at``. ``key`` names the condition and its subject (``channel_silence:alipay``):
    a partial unique index allows one open episode per key, so two periodic rounds
    running at once cannot open it twice. ``message`` is the latest wording seen."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint("severity IN ('critical', 'warning')", name="severity"),
        CheckConstraint("cleared_at IS NULL OR cleared_at >= fired_at", name="cleared_after_fired"),
        Index("uq_alerts_open_key", "key", unique=True, sqlite_where=text(OPEN), postgresql_where=text(OPEN)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(String(255))
    fired_at: Mapped[datetime] = mapped_column(index=True)
    last_seen_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]
