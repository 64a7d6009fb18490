"""Access periods and renewal: when an enrollment ends, renewal orders, extensions,
their refund, and the reminder before the end. Services flush, never commit.

Reading of the issue: a renewal extends access "from the current end date, not from the
payment date". For an enrollment still active the new end is old end + days. For one
already expired the days start at the payment, so a learner never pays for days that
lie in the past: new end = max(current end, paid at) + days.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select, update

from app import followups
from app.accounts.models import User
from app.cart.pricing import PriceLine, quote
from app.cart.services import tax_rate
from app.catalog.models import Course, Enrollment
from app.checkout.models import Order, OrderLine
from app.checkout.services import CheckoutError, PlacedOrder, _add_attempt, _sold_line, _unused_order_no
from app.extensions import db
from app.payments.registry import enabled_channels, unavailable_reason
from app.renewal.models import AccessExtension
from app.timeutil import now

REMIND_BEFORE = timedelta(days=7)
REMINDER_BATCH = 500


def access_end(paid_at: datetime, access_days: int | None) -> datetime | None:
    """The end of access a first purchase grants; None is lifetime."""
    return None if access_days is None else paid_at + timedelta(days=access_days)


def is_expired(enrollment: Enrollment, at: datetime | None = None) -> bool:
    return enrollment.expires_at is not None and enrollment.expires_at <= (at or now())


def ends_soon(enrollment: Enrollment, at: datetime | None = None) -> bool:
    """Active, and ending within the reminder period: the site shows the renew banner."""
    moment = at or now()
    return enrollment.expires_at is not None and moment < enrollment.expires_at <= moment + REMIND_BEFORE


def renewal_price_fen(course: Course) -> int:
    return course.renewal_price_fen if course.renewal_price_fen is not None else course.price_fen


def held_enrollment(user_id: int, course_id: int) -> Enrollment | None:
    """The learner's enrollment in the course, active or expired; None when they never
    had it or a refund revoked it."""
    return db.session.scalar(
        select(Enrollment).where(
            Enrollment.user_id == user_id, Enrollment.course_id == course_id,
            Enrollment.revoked_at.is_(None),
        )
    )


def renewable_course(user_id: int, course_id: int) -> Course:
    """The course if this learner may renew it; raises `CheckoutError` otherwise."""
    course = db.session.get(Course, course_id)
    if course is None or not course.is_published:
        raise CheckoutError("course_not_found", _l("This course does not exist."))
    if held_enrollment(user_id, course_id) is None:
        raise CheckoutError("course_not_owned", _l("You do not own this course."))
    if course.access_days is None:
        raise CheckoutError("lifetime_access", _l("This course gives lifetime access; there is nothing to renew."))
    return course


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
        order_no=_unused_order_no(), user_id=user_id, status="pending",
        subtotal_fen=priced.subtotal_fen, discount_fen=priced.discount_fen,
        tax_fen=priced.tax_fen, total_fen=priced.total_fen,
        expires_at=placed_at + timedelta(minutes=current_app.config["ORDER_TTL_MINUTES"]),
        created_at=placed_at,
    )
    line = _sold_line(course, priced.lines[0], placed_at)
    line.kind = "renewal"
    line.access_days = course.access_days
    order.lines.append(line)
    db.session.add(order)
    db.session.flush()
    return PlacedOrder(order.id, _add_attempt(order, channel, sequence=1))


def unrenewable_reason(order_id: int) -> str | None:
    """Why paying this order cannot extend access (the learner lost the course to a
    refund after ordering the renewal), or None. Read before the order moves."""
    lapsed = db.session.scalar(
        select(OrderLine.id).join(Order, Order.id == OrderLine.order_id)
        .outerjoin(Enrollment, (Enrollment.user_id == Order.user_id)
                   & (Enrollment.course_id == OrderLine.course_id)
                   & Enrollment.revoked_at.is_(None))
        .where(Order.id == order_id, OrderLine.kind == "renewal", Enrollment.id.is_(None))
        .limit(1)
    )
    return None if lapsed is None else "the learner no longer holds the course the renewal was for"


@dataclass(frozen=True)
class Extension:
    enrollment_id: int
    from_at: datetime
    to_at: datetime


def extend_for_order(order: Order, paid_at: datetime) -> list[Extension]:
    """Extend the enrollment of each renewal line of a just-paid order, once per line.

    Runs in the payment's transaction after its compare-and-set, so each order is paid
    once; the enrollment row is locked and read afresh, so two renewals paid at the same
    time both extend, one after the other.
    """
    done = []
    for line in order.lines:
        if line.kind != "renewal" or line.access_days is None:
            continue
        enrollment = db.session.scalar(
            select(Enrollment)
            .where(Enrollment.user_id == order.user_id, Enrollment.course_id == line.course_id,
                   Enrollment.revoked_at.is_(None))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if enrollment is None or enrollment.expires_at is None:
            continue  # lifetime access already: nothing to add (checked before payment)
        start = max(enrollment.expires_at, paid_at)
        end = start + timedelta(days=line.access_days)
        db.session.add(AccessExtension(enrollment_id=enrollment.id, order_line_id=line.id,
                                       from_at=start, to_at=end, created_at=now()))
        enrollment.expires_at = end
        db.session.flush()
        followups.enrollment_granted(order.user_id, line.course_id, order.id)
        done.append(Extension(enrollment.id, start, end))
    return done


def take_back(order_line_id: int) -> datetime | None:
    """A refund of a renewal line went through: move the end back by exactly the days
    that line added (the days other lines bought stay). Once; returns the new end."""
    extension = db.session.scalar(
        select(AccessExtension).where(AccessExtension.order_line_id == order_line_id,
                                      AccessExtension.taken_back_at.is_(None))
    )
    if extension is None:
        return None
    enrollment = db.session.scalar(
        select(Enrollment).where(Enrollment.id == extension.enrollment_id)
        .with_for_update().execution_options(populate_existing=True)
    )
    extension.taken_back_at = now()
    if enrollment.expires_at is not None:
        enrollment.expires_at -= extension.to_at - extension.from_at
    db.session.flush()
    return enrollment.expires_at


def enrollments_to_remind(limit: int = REMINDER_BATCH) -> list[int]:
    """Active enrollments ending within the reminder period not yet reminded of their
    current end date."""
    moment = now()
    return list(db.session.scalars(
        select(Enrollment.id).where(
            Enrollment.revoked_at.is_(None),
            Enrollment.expires_at > moment,
            Enrollment.expires_at <= moment + REMIND_BEFORE,
            or_(Enrollment.reminded_for_expiry.is_(None),
                Enrollment.reminded_for_expiry != Enrollment.expires_at),
        ).order_by(Enrollment.expires_at).limit(limit)
    ))


def remind_access_ending(enrollment_id: int) -> bool:
    """Remind the learner once per end date: the compare-and-set on
    ``reminded_for_expiry`` lets one of any number of racing runs through. A renewal
    moves the end date, which allows a reminder for the new date."""
    enrollment = db.session.get(Enrollment, enrollment_id)
    if enrollment is None or enrollment.revoked_at is not None or not ends_soon(enrollment):
        return False
    ends_at = enrollment.expires_at
    claimed = db.session.execute(
        update(Enrollment)
        .where(Enrollment.id == enrollment_id, Enrollment.expires_at == ends_at,
               or_(Enrollment.reminded_for_expiry.is_(None), Enrollment.reminded_for_expiry != ends_at))
        .values(reminded_for_expiry=ends_at)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        return False
    followups.access_ending(enrollment_id, ends_at)
    return True
