"""Access periods and renewal: when an enrollment ends, extensions, their refund, and
the reminder before the end (placing a renewal order is `app.renewal.ordering`).
Services flush, never commit; payments and refunds call in here, so nothing here
imports checkout.

Reading of the issue: a renewal extends access "from the current end date, not from the
payment date". For an enrollment still active the new end is old end + days. For one
already expired the days start at the payment, so a learner never pays for days that
lie in the past: new end = max(current end, paid at) + days.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import Row, or_, select, update

from app import followups
from app.catalog.models import Course, Enrollment
from app.checkout.models import Order
from app.extensions import db
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


def lapsed_renewal(holdings: Iterable[Row]) -> str | None:
    """Why paying an order cannot extend access (the learner lost the course to a refund
    after ordering the renewal), or None. ``holdings`` are the order's lines, each with
    the learner's enrollment in its course (None columns when there is none), as the
    payment job reads them before the order moves."""
    for line in holdings:
        if line.line_kind != "renewal":
            continue
        if line.course_id is None or line.revoked_at is not None:
            return "the learner no longer holds the course the renewal was for"
        if line.expires_at is None:
            return "the learner's access to the course is for life: the renewal has nothing to extend"
    return None


class RenewalLapsed(RuntimeError):
    """A renewal about to be booked found nothing to extend."""


@dataclass(frozen=True)
class Extension:
    enrollment_id: int
    from_at: datetime
    to_at: datetime


def extend_for_order(order: Order, paid_at: datetime) -> list[Extension]:
    """Extend the enrollment of each renewal line of a just-paid order, once per line.

    Runs in the payment's transaction after its compare-and-set, so each order is paid
    once; the enrollment row is locked and read afresh, so two renewals paid at the same
    time both extend, one after the other (and a line never extends twice: its
    extension's ``order_line_id`` is unique). Raises when the enrollment went away since
    `lapsed_renewal` read it (a refund revoked it meanwhile): the payment rolls back, and
    its retry finds the renewal lapsed and gives the money back.
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
            raise RenewalLapsed(f"order {order.id}: no time-limited enrollment left to extend")
        start = max(enrollment.expires_at, paid_at)
        end = start + timedelta(days=line.access_days)
        db.session.add(AccessExtension(enrollment_id=enrollment.id, order_line_id=line.id,
                                       from_at=start, to_at=end, created_at=now()))
        enrollment.expires_at = end
        db.session.flush()
        followups.enrollment_granted(order.user_id, line.course_id, order.id)
        done.append(Extension(enrollment.id, start, end))
    return done


def renewed_from(order_line_id: int) -> datetime | None:
    """When the days a renewal line bought began (None before it is paid)."""
    return db.session.scalar(select(AccessExtension.from_at).where(AccessExtension.order_line_id == order_line_id))


def renewed_course_ids(user_id: int, course_ids: list[int]) -> set[int]:
    """Those of the courses whose current holding carries renewal days not taken back."""
    if not course_ids:
        return set()
    return set(db.session.scalars(
        select(Enrollment.course_id)
        .join(AccessExtension, AccessExtension.enrollment_id == Enrollment.id)
        .where(Enrollment.user_id == user_id, Enrollment.course_id.in_(course_ids),
               Enrollment.revoked_at.is_(None), AccessExtension.taken_back_at.is_(None))
    ))


def end_earlier_extensions(user_id: int, course_ids: list[int]) -> None:
    """A course a refund revoked is bought again: the renewals of the earlier holding do
    not count towards the new period, so a later refund of one of them must not take days
    off it. They are marked taken back (their money is the refund's business, not this)."""
    db.session.execute(
        update(AccessExtension)
        .where(AccessExtension.taken_back_at.is_(None),
               AccessExtension.enrollment_id.in_(select(Enrollment.id).where(
                   Enrollment.user_id == user_id, Enrollment.course_id.in_(course_ids))))
        .values(taken_back_at=now())
        .execution_options(synchronize_session=False)
    )


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
