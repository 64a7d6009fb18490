"""Endpoints of the platform, the events we announce to them, and each delivery."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.timeutil import system_now

EVENT_TYPES = ("order.paid", "order.refunded", "enrollment.granted", "enrollment.revoked")
_EVENT_TYPE_CHECK = "event_type IN ('order.paid', 'order.refunded', 'enrollment.granted', 'enrollment.revoked')"


class PlatformEndpoint(db.Model):
    """A URL of the platform that receives events, managed by admins.

    ``event_types`` is the comma-separated subscription. The signing secret is ours,
    sealed with the field keyring (app/fieldkeys.py) under ``secret_context(id)``.
    """

    __tablename__ = "platform_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(String(255), default="")
    enabled: Mapped[bool] = mapped_column(default=True, index=True)
    event_types: Mapped[str] = mapped_column(String(255))
    secret_key_id: Mapped[str] = mapped_column(String(16))
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=system_now)
    secret_rotated_at: Mapped[datetime | None]

    @property
    def subscribed(self) -> tuple[str, ...]:
        return tuple(name for name in self.event_types.split(",") if name)


class PlatformEvent(db.Model):
    """One thing that happened, as sent: ``body`` is the exact JSON every delivery posts,
    so a resend carries the same bytes. ``dedupe_key`` names the movement (the paid
    order, the succeeded refund, the enrollment change), so it is announced once."""

    __tablename__ = "platform_events"
    __table_args__ = (CheckConstraint(_EVENT_TYPE_CHECK, name="event_type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    event_type: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(96), unique=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=system_now, index=True)


class PlatformDelivery(db.Model):
    """The delivery of one event to one endpoint, retried on the schedule until it is
    delivered or ``failed``. A staff resend is a new row pointing at ``resent_from_id``.

    ``attempts`` counts claims; the worker holding a claim finishes only while the row
    still carries its attempt number, so a claim the sweep took back cannot be
    overwritten by its late first holder.
    """

    __tablename__ = "platform_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivering', 'delivered', 'failed')", name="status"),
        CheckConstraint(_EVENT_TYPE_CHECK, name="event_type"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_platform_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("platform_events.id"), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("platform_endpoints.id"), index=True)
    event_type: Mapped[str] = mapped_column(String(32), index=True)  # copied, for the log's filter
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_http_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(255))
    last_response_ms: Mapped[int | None]
    delivered_at: Mapped[datetime | None]
    resent_from_id: Mapped[int | None] = mapped_column(ForeignKey("platform_deliveries.id"))
    created_at: Mapped[datetime] = mapped_column(default=system_now)

    event: Mapped[PlatformEvent] = relationship(lazy="joined")
    endpoint: Mapped[PlatformEndpoint] = relationship(lazy="joined")


class PlatformDeliveryAttempt(db.Model):
    """One HTTP try of a delivery: the log staff read when an endpoint misbehaves."""

    __tablename__ = "platform_delivery_attempts"
    __table_args__ = (
        CheckConstraint("outcome IN ('delivered', 'retry', 'failed')", name="outcome"),
        CheckConstraint("number >= 1", name="number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("platform_deliveries.id"), index=True)
    number: Mapped[int]
    started_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(10))
    http_status: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(255))
    response_ms: Mapped[int | None]
