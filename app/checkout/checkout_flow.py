"""Checkout as the boundary runs it, for the web pages and the API alike:
place the order (one transaction, committed), then ask the channel for the QR code.

Both functions commit; call them only from views.
"""
from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from app.cart import services as cart_services
from app.checkout.models import Order
from app.checkout.services import (
    IdempotencyConflict,
    OrderRequest,
    current_attempt,
    find_by_idempotency_key,
    place_order,
)
from app.extensions import db
from app.payments.precreate import issue_qr


def _issue_first_qr(order_id: int) -> None:
    order = db.session.get(Order, order_id)
    attempt = current_attempt(order_id)
    if attempt is not None and attempt.qr_code is None and order.status == "pending":
        issue_qr(attempt.id, _subject(order))


def _subject(order: Order) -> str:
    titles = [line.title for line in order.lines]
    return titles[0] if len(titles) == 1 else f"{titles[0]} 等 {len(titles)} 门课程"


def checkout_cart(user_id: int, channel: str) -> str:
    """Turn the learner's cart into an order; returns the order number."""
    cart = cart_services.cart_for(user_id)
    request = OrderRequest(
        user_id=user_id,
        course_ids=tuple(item.course_id for item in cart.items),
        coupon_code=cart.coupon_code,
        channel=channel,
    )
    order_id = place_order(request)
    cart_services.clear_cart(user_id)
    db.session.commit()
    _issue_first_qr(order_id)
    return db.session.get(Order, order_id).order_no


def checkout_request(request: OrderRequest) -> int:
    """Place an order for an API client, honouring its Idempotency-Key; returns the id."""
    try:
        order_id = place_order(request)
        db.session.commit()
    except IntegrityError:
        # Two requests with one key raced; the loser returns the winner's order.
        db.session.rollback()
        if not request.idempotency_key:
            raise
        existing = find_by_idempotency_key(request.user_id, request.idempotency_key)
        if existing is None:
            raise
        if existing.request_fingerprint != request.fingerprint:
            raise IdempotencyConflict() from None
        order_id = existing.id
    _issue_first_qr(order_id)
    return order_id


def retry_qr(order_id: int) -> None:
    _issue_first_qr(order_id)
