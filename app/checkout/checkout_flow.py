"""Checkout as the boundary runs it, for the web pages and the API alike:
place the order (one transaction, committed), then ask the channel for the QR code.

Both functions commit; call them only from views.
"""
from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from app.cart import services as cart_services
from app.checkout.models import MEMBERSHIP_TITLE, TOPUP_TITLE, Order
from app.checkout.services import (
    IdempotencyConflict,
    OrderRequest,
    PlacedOrder,
    current_attempt,
    find_by_idempotency_key,
    place,
    switch_channel,
)
from app.extensions import db
from app.jobs import enqueue
from app.payments.precreate import issue_qr
from app.payments.resolution import close_at_channel
from app.payments.settlement import close_attempt


def _issue_first_qr(order_id: int) -> None:
    order = db.session.get(Order, order_id)
    attempt = current_attempt(order_id)
    if attempt is not None and attempt.qr_code is None and order.status == "pending":
        issue_qr(attempt.id, _subject(order))


def _subject(order: Order) -> str:
    titles = [line.title for line in order.lines]
    if order.kind == "topup":  # the prepaid balance (app/wallet): no course lines
        return TOPUP_TITLE
    if order.kind == "membership":  # app/membership: no course lines either
        return MEMBERSHIP_TITLE
    return titles[0] if len(titles) == 1 else f"{titles[0]} 等 {len(titles)} 门课程"


def _new_order_subject(placed: PlacedOrder) -> str | None:
    """The QR code's subject for an order this call created, read before the commit
    while the order and its lines are still in the session (no query)."""
    if placed.new_attempt_id is None:
        return None
    return _subject(db.session.get(Order, placed.order_id))


def issue_placed_qr(placed: PlacedOrder, subject: str | None) -> None:
    """After the commit: a new order's attempt is the one just made, so nothing is read
    back for it (`issue_qr` re-reads the attempt itself); an order placed earlier gets
    its QR code only if it still lacks one."""
    if placed.new_attempt_id is not None and subject is not None:
        issue_qr(placed.new_attempt_id, subject)
    else:
        _issue_first_qr(placed.order_id)


def checkout_cart(user_id: int, channel: str, use_balance: str = "none") -> str:
    """Turn the learner's cart into an order; returns the order number. With the
    balance (``use_balance``, app/wallet) it may be paid already."""
    cart = cart_services.cart_for(user_id)
    request = OrderRequest(
        user_id=user_id,
        course_ids=tuple(item.course_id for item in cart.items),
        coupon_code=cart.coupon_code,
        channel=channel,
        use_balance=use_balance,
        bundle_of=tuple(cart_services.bundle_of(cart).items()),
    )
    placed = place(request)
    cart_services.clear_cart(user_id)
    subject = _new_order_subject(placed)
    order_no = db.session.get(Order, placed.order_id).order_no  # in the session: no query
    db.session.commit()
    issue_placed_qr(placed, subject)
    return order_no


def checkout_request(request: OrderRequest) -> int:
    """Place an order for an API client, honouring its Idempotency-Key; returns the id."""
    try:
        placed = place(request)
        subject = _new_order_subject(placed)
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
        placed, subject = PlacedOrder(existing.id), None
    issue_placed_qr(placed, subject)
    return placed.order_id


def retry_qr(order_id: int, user_id: int) -> None:
    """Ask again for the QR code of the current attempt, or, if that attempt was closed
    or failed, open a new one on the same channel."""
    attempt = current_attempt(order_id)
    if attempt is not None and attempt.status != "created":
        change_channel(order_id, user_id, attempt.channel)
        return
    _issue_first_qr(order_id)


def change_channel(order_id: int, user_id: int, channel: str) -> None:
    """Pay with another channel: a new attempt, and the superseded ones closed at their
    channels. Raises `SwitchRefused` (nothing changed) when the order or channel cannot.

    A superseded attempt found paid while closing it pays the order; the new attempt,
    never sent to its channel, is then simply closed here.
    """
    switch = switch_channel(order_id, user_id, channel)
    db.session.commit()
    for attempt_id in switch.superseded_attempt_ids:
        settlement = close_at_channel(attempt_id)
        if settlement.refund_id is not None:
            enqueue("execute_refund", settlement.refund_id)
    order = db.session.get(Order, order_id)
    if order.status != "pending" and switch.created:
        close_attempt(switch.attempt_id)
        db.session.commit()
        return
    _issue_first_qr(order_id)
