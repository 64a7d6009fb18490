"""The append-only record of every staff action on money or roles (DESIGN.md §10)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.database import append_only
from app.extensions import db
from app.timeutil import system_now


class AuditEntry(db.Model):
    """Who did what to which row, when, why, and the row before and after (JSON text).

    Rows are never updated or deleted: database triggers refuse both, so not even a bug
    in this application can rewrite history.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    actor_email: Mapped[str] = mapped_column(String(254))  # a snapshot; "system" for jobs
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=system_now, index=True)


append_only(AuditEntry.__table__)
