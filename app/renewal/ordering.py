"""Placing a renewal order: one line of kind ``renewal`` for a course the learner holds.
Kept apart from `app.renewal.services`, which payments and refunds import, because it
builds on checkout."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.accounts.models import User
from app.cart.pricing import PriceLine, quote
from app.cart.services import tax_rate
from app.catalog.models import Course
from app.checkout.models import Order, OrderLine
from app.checkout.services import CheckoutError, PlacedOrder, add_attempt, sold_line, unused_order_no
from app.extensions import db
from app.payments.models import Refund, RefundLine
from app.payments.registry import enabled_channels, unavailable_reason
from app.renewal.services import held_enrollment, renewal_price_fen
from app.timeutil import now


def renewable_course(user_id: int, course_id: int) -> Course:
    """The course if this learner may renew it; raises `CheckoutError` otherwise."""
    course = db.session.get(Course, course_id)
    if course is None or not course.is_published:
        raise CheckoutError("course_not_found", _l("This course does not exist."))
    held = held_enrollment(user_id, course_id)
    if held is None:
        raise CheckoutError("course_not_owned", _l("You do not own this course."))
    # The learner's own access counts, not only the course's: one bought while the course
    # was for life stays for life when staff later limit the course.
    if _purchase_refund_open(user_id, course_id):
        # The refund would end access, and with it the days this renewal would add.
        raise CheckoutError("refund_open", _l("A refund of this course is under way; it cannot be renewed meanwhile."))
    if course.access_days is None or held.expires_at is None:
        raise CheckoutError("lifetime_access", _l("This course gives lifetime access; there is nothing to renew."))
    return course


def _purchase_refund_open(user_id: int, course_id: int) -> bool:
    """Whether a refund of the learner's purchase of the course is asked for or on its way."""
    return db.session.scalar(
        select(Refund.id)
        .join(RefundLine, RefundLine.refund_id == Refund.id)
        .join(OrderLine, OrderLine.id == RefundLine.order_line_id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(Order.user_id == user_id, OrderLine.course_id == course_id, OrderLine.kind == "purchase",
               Refund.status.in_(("requested", "approved", "processing", "failed")))
        .limit(1)
    ) is not None


def place_renewal(user_id: int, course_id: int, channel: str) -> PlacedOrder:
    """A pending renewal order for one course the learner holds, and its first attempt.

    One line of kind ``renewal`` at the renewal price, taxed like any line; coupons do
    not apply to renewals (they are promotions for first purchases). A renewal order of
    the course still waiting to be paid is returned instead of a second one.
    """
    if channel not in enabled_channels():
        raise CheckoutError("unknown_channel", _l("This payment method is not available."))
    # Serialise one learner's checkouts, as placing a cart order does.
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update())
    course = renewable_course(user_id, course_id)
    waiting = db.session.scalar(
        select(Order.id).join(OrderLine, OrderLine.order_id == Order.id).where(
            Order.user_id == user_id, Order.status == "pending", Order.expires_at > now(),
            OrderLine.course_id == course.id, OrderLine.kind == "renewal",
        ).limit(1)
    )
    if waiting is not None:
        return PlacedOrder(waiting)
    priced = quote([PriceLine(course.id, renewal_price_fen(course))], tax_rate(), None)
    if priced.total_fen <= 0:
        raise CheckoutError("nothing_to_pay", _l("The order total must be above zero."))
    refusal = unavailable_reason(channel, priced.total_fen)
    if refusal is not None:
        raise CheckoutError("channel_unavailable", refusal)
    placed_at = now()
    order = Order(
        order_no=unused_order_no(), user_id=user_id, status="pending",
        subtotal_fen=priced.subtotal_fen, discount_fen=priced.discount_fen,
        tax_fen=priced.tax_fen, total_fen=priced.total_fen,
        expires_at=placed_at + timedelta(minutes=current_app.config["ORDER_TTL_MINUTES"]),
        created_at=placed_at,
    )
    line = sold_line(course, priced.lines[0], placed_at)
    line.kind = "renewal"
    line.access_days = course.access_days
    order.lines.append(line)
    db.session.add(order)
    db.session.flush()
    return PlacedOrder(order.id, add_attempt(order, channel, sequence=1))
