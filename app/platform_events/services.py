"""Recording platform events, and staff resends. Flushes, never commits, never sends.

The `announce_*` functions run inside the money transaction (app/followups.py): they
only add rows, which commit or roll back with the movement they describe. With no
enabled endpoint they cost one small SELECT per transaction, whatever the order's size:
the subscription is read once and kept for the rest of that transaction only, so a
change an admin makes in another process is seen by the next payment.
"""
from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select

from app.audit.services import record
from app.checkout.models import Order, OrderLine
from app.errors import ServiceError
from app.extensions import db
from app.payments.models import Refund, RefundLine
from app.platform_events.models import PlatformDelivery, PlatformEndpoint, PlatformEvent
from app.timeutil import now

_SUBSCRIPTIONS = "platform_events.subscriptions"
CURRENCY = "CNY"


class DeliveryError(ServiceError):
    """A resend that cannot be made; ``message`` is for the staff member."""


def _subscriptions() -> list[tuple[int, tuple[str, ...]]]:
    """(endpoint id, subscribed types) of every enabled endpoint, read once per transaction."""
    session = db.session()
    cached = session.info.get(_SUBSCRIPTIONS)
    if cached is not None and cached[0] is session.get_transaction():
        return cached[1]
    rows = db.session.execute(
        select(PlatformEndpoint.id, PlatformEndpoint.event_types).where(PlatformEndpoint.enabled)
    ).all()
    subscriptions = [(endpoint_id, tuple(types.split(","))) for endpoint_id, types in rows]
    # Keyed by the transaction object itself: a later transaction reads afresh.
    session.info[_SUBSCRIPTIONS] = (session.get_transaction(), subscriptions)
    return subscriptions


def iso_utc(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat() + "Z"


def new_public_id() -> str:
    return "evt_" + secrets.token_hex(12)


def _announce(event_type: str, dedupe_key: str, order_id: int | None, data: Any) -> int | None:
    """Write the event and a pending delivery per subscribed endpoint; the event id, or
    None when nobody subscribes or this movement was announced already. ``data`` is a
    callable building the payload, so nothing is loaded when nobody listens."""
    endpoint_ids = [endpoint_id for endpoint_id, types in _subscriptions() if event_type in types]
    if not endpoint_ids:
        return None
    if db.session.scalar(select(PlatformEvent.id).where(PlatformEvent.dedupe_key == dedupe_key)) is not None:
        return None
    moment = now()
    public_id = new_public_id()
    envelope = {"id": public_id, "type": event_type, "created_at": iso_utc(moment), "data": data()}
    event = PlatformEvent(
        public_id=public_id, event_type=event_type, dedupe_key=dedupe_key, order_id=order_id,
        body=json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), sort_keys=True),
        created_at=moment,
    )
    db.session.add(event)
    db.session.flush()
    db.session.execute(insert(PlatformDelivery), [
        {"event_id": event.id, "endpoint_id": endpoint_id, "event_type": event_type,
         "status": "pending", "attempts": 0, "next_attempt_at": moment, "created_at": moment}
        for endpoint_id in endpoint_ids
    ])
    return event.id


def announce_order_paid(order_id: int) -> int | None:
    def data() -> dict[str, Any]:
        order = db.session.get(Order, order_id)
        assert order is not None
        return {
            "order_no": order.order_no, "learner_id": order.user_id, "amount_fen": order.total_fen,
            "currency": CURRENCY, "course_ids": [line.course_id for line in order.lines],
            "paid_at": iso_utc(order.paid_at or now()),
        }

    return _announce("order.paid", f"order.paid:{order_id}", order_id, data)


def announce_order_refunded(refund_id: int) -> int | None:
    refund = db.session.get(Refund, refund_id)
    if refund is None:
        return None

    def data() -> dict[str, Any]:
        order = db.session.get(Order, refund.order_id)
        assert order is not None
        refunded_fen = db.session.scalar(
            select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
                Refund.order_id == order.id, Refund.kind == "customer", Refund.status == "succeeded"
            )
        )
        course_ids = list(db.session.scalars(
            select(OrderLine.course_id).join(RefundLine, RefundLine.order_line_id == OrderLine.id)
            .where(RefundLine.refund_id == refund_id).order_by(OrderLine.id)
        ))
        return {
            "order_no": order.order_no, "refund_no": refund.refund_no, "learner_id": order.user_id,
            "amount_fen": refund.amount_fen, "refunded_total_fen": refunded_fen,
            "order_total_fen": order.total_fen, "fully_refunded": refunded_fen >= order.total_fen,
            "currency": CURRENCY, "course_ids": course_ids,
        }

    return _announce("order.refunded", f"order.refunded:{refund_id}", refund.order_id, data)


def _announce_enrollment(event_type: str, user_id: int, course_id: int, order_id: int | None) -> int | None:
    def data() -> dict[str, Any]:
        order = db.session.get(Order, order_id) if order_id is not None else None
        return {"learner_id": user_id, "course_id": course_id,
                "order_no": order.order_no if order is not None else None}

    key = f"{event_type}:{user_id}:{course_id}:{order_id or 0}"
    return _announce(event_type, key, order_id, data)


def announce_enrollment_granted(user_id: int, course_id: int, order_id: int | None) -> int | None:
    return _announce_enrollment("enrollment.granted", user_id, course_id, order_id)


def announce_enrollment_revoked(user_id: int, course_id: int, order_id: int | None) -> int | None:
    return _announce_enrollment("enrollment.revoked", user_id, course_id, order_id)


def resend_delivery(delivery_id: int, staff_id: int, reason: str) -> int:
    """A new pending delivery of a delivered or failed one's event to the same endpoint,
    due now; the old row stays as it was. Returns the new delivery's id (audited)."""
    text = " ".join((reason or "").split())
    if not text:
        raise DeliveryError("reason_required", "Please give a reason.")
    original = db.session.get(PlatformDelivery, delivery_id)
    if original is None:
        raise DeliveryError("not_found", "No such delivery.")
    if original.status not in ("delivered", "failed"):
        raise DeliveryError("in_progress", "This delivery is still being tried; resend it once it is delivered or failed.")
    if not original.endpoint.enabled:
        raise DeliveryError("endpoint_disabled", "The endpoint is disabled; enable it first.")
    moment = now()
    resent = PlatformDelivery(
        event_id=original.event_id, endpoint_id=original.endpoint_id, event_type=original.event_type,
        status="pending", attempts=0, next_attempt_at=moment, resent_from_id=original.id, created_at=moment,
    )
    db.session.add(resent)
    db.session.flush()
    record(staff_id, "platform_delivery.resend", "platform_delivery", original.id, text,
           {"status": original.status}, {"resent_as": resent.id, "event": original.event.public_id})
    return resent.id
