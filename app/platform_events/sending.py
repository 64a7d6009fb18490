"""Posting a delivery to its endpoint, and finding the deliveries that are due.

`deliver` is the body of the `deliver_event` job and a boundary: it commits its claim
before the request leaves (so no database transaction waits on the network) and its
outcome after. 2xx is delivered; any other answer, a timeout or a connection error is
retried after the next interval of ``PLATFORM_EVENTS_RETRY_SECONDS``, and once those
are spent the delivery is ``failed``. Delivery is at least once: a worker that dies
between the request and its outcome leaves a claim the sweep hands back, and the
receiver dedupes by the event id.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from flask import current_app
from sqlalchemy import or_, select, update

from app.extensions import db
from app.platform_events import signing
from app.platform_events.endpoints import EndpointError, endpoint_secret
from app.platform_events.models import PlatformDelivery, PlatformDeliveryAttempt, PlatformEndpoint
from app.platform_events.states import next_delivery_status
from app.timeutil import as_aware, now

# A claim outlives the request's timeout by this much before the sweep takes it back.
CLAIM_MARGIN = timedelta(seconds=60)
USER_AGENT = "CourseCashier-Events/1"


@dataclass(frozen=True)
class PostResult:
    http_status: int | None
    error: str | None
    response_ms: int

    @property
    def delivered(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


def _move(delivery_id: int, expected: str, event: str, *conditions: Any, **values: Any) -> bool:
    """Compare-and-set on a delivery's status (plus ``conditions``); False if it changed."""
    target = next_delivery_status(expected, event)
    result = db.session.execute(
        update(PlatformDelivery)
        .where(PlatformDelivery.id == delivery_id, PlatformDelivery.status == expected, *conditions)
        .values(status=target, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def post_event(url: str, secret: str, body: bytes, event_type: str, delivery_id: int,
               timeout: float) -> PostResult:
    """One signed POST. Never raises for what the network or the receiver does."""
    timestamp = int(as_aware(now()).timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.EVENT_HEADER: event_type,
        signing.DELIVERY_HEADER: str(delivery_id),
        signing.TIMESTAMP_HEADER: str(timestamp),
        signing.SIGNATURE_HEADER: signing.signature(secret, timestamp, body),
    }
    started = time.monotonic()
    try:
        # No redirects: a signed request is for the address the admin configured.
        response = requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.Timeout:
        return PostResult(None, f"timed out after {timeout:g} s", _elapsed_ms(started))
    except requests.RequestException as error:
        return PostResult(None, f"connection failed: {type(error).__name__}", _elapsed_ms(started))
    status = response.status_code
    response.close()
    error = None if 200 <= status < 300 else f"HTTP {status}"
    return PostResult(status, error, _elapsed_ms(started))


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def deliver(delivery_id: int) -> str:
    """Claim a due pending delivery, post it, record the outcome; idempotent: a delivery
    that is not pending and due (taken, delivered, failed, waiting) is left alone."""
    moment = now()
    delivery = db.session.get(PlatformDelivery, delivery_id)
    if delivery is None:
        return "no such delivery"
    if delivery.status != "pending" or (delivery.next_attempt_at or moment) > moment:
        return f"not due ({delivery.status})"
    if not delivery.endpoint.enabled:
        return "endpoint disabled"
    timeout = float(current_app.config["PLATFORM_EVENTS_TIMEOUT_SECONDS"])
    number = delivery.attempts + 1
    claimed = _move(
        delivery_id, "pending", "claim",
        PlatformDelivery.attempts == delivery.attempts,
        or_(PlatformDelivery.next_attempt_at.is_(None), PlatformDelivery.next_attempt_at <= moment),
        attempts=number, last_attempt_at=moment,
        claimed_until=moment + timedelta(seconds=timeout) + CLAIM_MARGIN,
    )
    if not claimed:
        db.session.rollback()
        return "taken"
    url, event_type = delivery.endpoint.url, delivery.event_type
    body = delivery.event.body.encode("utf-8")
    try:
        secret: str | None = endpoint_secret(delivery.endpoint)
    except EndpointError as error:
        secret, unreadable = None, error.message
    db.session.commit()  # the claim is ours before anything leaves
    if secret is None:
        result = PostResult(None, unreadable, 0)
    else:
        result = post_event(url, secret, body, event_type, delivery_id, timeout)
    outcome = record_outcome(delivery_id, number, result)
    db.session.commit()
    return outcome


def record_outcome(delivery_id: int, number: int, result: PostResult) -> str:
    """Move the claimed delivery by the result of try ``number`` and log the try; flushes."""
    moment = now()
    schedule: tuple[int, ...] = current_app.config["PLATFORM_EVENTS_RETRY_SECONDS"]
    values: dict[str, Any] = {"claimed_until": None, "last_http_status": result.http_status,
                              "last_error": result.error, "last_response_ms": result.response_ms}
    if result.delivered:
        event, values["delivered_at"], values["next_attempt_at"] = "deliver", moment, None
    elif number <= len(schedule):
        event, values["next_attempt_at"] = "retry", moment + timedelta(seconds=schedule[number - 1])
    else:
        event, values["next_attempt_at"] = "give_up", None
    outcome = {"deliver": "delivered", "retry": "retry", "give_up": "failed"}[event]
    db.session.add(PlatformDeliveryAttempt(
        delivery_id=delivery_id, number=number, started_at=moment, outcome=outcome,
        http_status=result.http_status, error=result.error, response_ms=result.response_ms,
    ))
    # Only while the row still carries our claim: the sweep may have handed it on.
    if not _move(delivery_id, "delivering", event, PlatformDelivery.attempts == number, **values):
        db.session.flush()
        return "claim lost"
    db.session.flush()
    return outcome


def release_expired_claims() -> int:
    """Hand back deliveries whose claim outlived its lease (a dead worker); flushes."""
    moment = now()
    next_delivery_status("delivering", "expire")  # the table allows it
    return db.session.execute(
        update(PlatformDelivery)
        .where(PlatformDelivery.status == "delivering", PlatformDelivery.claimed_until < moment)
        .values(status="pending", claimed_until=None, next_attempt_at=moment)
        .execution_options(synchronize_session=False)
    ).rowcount


def due_delivery_ids(limit: int) -> list[int]:
    """Pending deliveries to enabled endpoints whose time has come, oldest due first."""
    return list(db.session.scalars(
        select(PlatformDelivery.id)
        .join(PlatformEndpoint, PlatformEndpoint.id == PlatformDelivery.endpoint_id)
        .where(PlatformDelivery.status == "pending", PlatformDelivery.next_attempt_at <= now(),
               PlatformEndpoint.enabled.is_(True))
        .order_by(PlatformDelivery.next_attempt_at, PlatformDelivery.id)
        .limit(limit)
    ))
