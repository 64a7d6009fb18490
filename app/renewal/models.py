from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.timeutil import system_now


class AccessExtension(db.Model):
    """What one paid renewal line added to an enrollment: its end moved from
    ``from_at`` to ``to_at``. A refund of the line takes back exactly these days
    (``taken_back_at`` set); one row per line, so a line extends access once."""

    __tablename__ = "access_extensions"
    __table_args__ = (
        UniqueConstraint("order_line_id"),
        CheckConstraint("to_at > from_at", name="period"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id"), index=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"))
    from_at: Mapped[datetime]
    to_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=system_now)
    taken_back_at: Mapped[datetime | None]
