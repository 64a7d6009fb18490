"""Instructor shares move from pending to available once an order line's refund window
has closed (DESIGN.md §9), each by its own journal entry, never by an update.

A line that is being refunded (requested, awaiting a decision, on its way, or failed and
retryable) stays pending until that refund ends: releasing it would only have the refund
claw the money back from ``available`` a moment later.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Select, String, and_, cast, exists, literal, select

from app.checkout.models import Order, OrderLine
from app.extensions import db
from app.ledger.models import JournalEntry
from app.ledger.services import post_release
from app.payments.models import Refund, RefundLine
from app.timeutil import now

# Refunds that may still take a line's money back, and those that did.
OPEN_REFUND_STATUSES = ("requested", "awaiting_finance", "approved", "processing", "failed")
HOLDING_STATUSES = OPEN_REFUND_STATUSES + ("succeeded",)
RELEASABLE_ORDER_STATUSES = ("paid", "partially_refunded")


def _window_closed_before() -> datetime:
    return now() - timedelta(days=current_app.config["REFUND_WINDOW_DAYS"])


def _releasable_lines() -> Select:
    """Lines of paid orders whose window has closed, not yet released, not held."""
    released = exists().where(
        JournalEntry.source_key == literal("release:") + cast(OrderLine.id, String)
    )
    held = exists().where(
        and_(
            RefundLine.order_line_id == OrderLine.id,
            Refund.id == RefundLine.refund_id,
            Refund.status.in_(HOLDING_STATUSES),
        )
    )
    return (
        select(OrderLine)
        .join(Order, Order.id == OrderLine.order_id)
        .where(
            Order.status.in_(RELEASABLE_ORDER_STATUSES),
            Order.paid_at <= _window_closed_before(),
            ~released,
            ~held,
        )
    )


def due_order_ids(limit: int) -> list[int]:
    """Orders with at least one line ready to release, oldest payment first."""
    lines = _releasable_lines().subquery()
    return list(
        db.session.scalars(
            select(Order.id)
            .where(Order.id.in_(select(lines.c.order_id)))
            .order_by(Order.paid_at, Order.id)
            .limit(limit)
        )
    )


def release_order(order_id: int) -> int:
    """Release every ready line of one order; returns how many. Flushes.

    Holds the order's row lock, as a refund completing does, so a release and a refund of
    the same line cannot both take the pending share.
    """
    db.session.execute(select(Order.id).where(Order.id == order_id).with_for_update())
    lines = db.session.scalars(_releasable_lines().where(OrderLine.order_id == order_id)).all()
    for line in lines:
        post_release(line)
    return len(lines)
