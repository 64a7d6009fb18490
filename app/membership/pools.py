"""Sharing each month's membership pool between the courses members studied.

The rule (also in the statements' rule text, `earnings.rules.RULE_TEXT`):

- A membership's pool is spread over the Beijing calendar months its period covers, in
  proportion to the seconds of the period in each, by largest remainder: a year's
  membership pays into twelve months, not all into the month it was bought.
- A month's pool is the sum of those parts (with any part of an earlier month booked
  after that month was shared out). It is shared between the courses by the
  lessons members opened in each during the month (each opening counts, in a course
  the member had not bought: a bought course was paid for already), largest remainder,
  ties to the lower course id; a course's part is split between its co-authors by their
  weights the same way. The parts add up to the pool exactly, not a fen lost.
- The instructors' parts are available at once: a membership is not refundable, so no
  refund window holds them back.
- A month in which no member opened a lesson: the pool goes to platform revenue, in an
  entry saying so, and the month's `MembershipPool` row records why.
- A month is shared out once, after it ends (``period`` is unique); the entry is
  dated when it is posted, so it appears on the statement of the month it is posted in,
  its memo naming the month it shares.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, union_all

from app.catalog.models import Course, Enrollment, Instructor, LessonView
from app.earnings.models import CourseAuthor
from app.earnings.periods import period_end, period_of, period_start, periods_between, previous_period
from app.earnings.rules import authors_of
from app.extensions import db
from app.ledger import accounts
from app.ledger.services import post_entry
from app.membership.models import Membership, MembershipPool, MembershipPoolShare
from app.membership.services import MEMBERSHIP_POOL
from app.money import allocate, display_yuan
from app.timeutil import now

POOL_ENTRY = "membership_pool"


def monthly_parts(pool_fen: int, starts_at: datetime, ends_at: datetime) -> dict[str, int]:
    """One membership's pool over the months of its period, by seconds in each."""
    # The period ends before ``ends_at``: its last month is the one of the moment before.
    periods = periods_between(period_of(starts_at), period_of(ends_at - timedelta(microseconds=1)))
    weights = [(min(ends_at, period_end(period)) - max(starts_at, period_start(period))) // timedelta(seconds=1)
               for period in periods]
    return dict(zip(periods, allocate(pool_fen, weights)))


def month_pool_fen(period: str) -> int:
    """The month's pool: its parts of every paid membership, and any part of an earlier
    month that month's sharing missed (a payment booked after the month was shared out),
    so no fen is left behind on the pool account. Computed as every part up to the end
    of the month less what earlier months shared."""
    memberships = db.session.execute(
        select(Membership.pool_fen, Membership.starts_at, Membership.ends_at)
        .where(Membership.starts_at.is_not(None), Membership.starts_at < period_end(period))
    )
    due = sum(part for pool_fen, starts_at, ends_at in memberships
              for month, part in monthly_parts(pool_fen, starts_at, ends_at).items() if month <= period)
    shared = db.session.scalar(
        select(func.coalesce(func.sum(MembershipPool.pool_fen), 0)).where(MembershipPool.period < period))
    return due - shared


def month_opens(period: str) -> list[tuple[int, int]]:
    """(course id, lessons opened) in the month by members during their membership, in
    courses they held no enrollment in at the time (none, one refunded, or one whose
    access had ended); by course id.

    An open is a distinct (member, lesson) in the month: reloading a lesson, or opening it
    again next week, moves no money. Opens by the course's own authors do not count, or
    an instructor could buy a membership and steer the pool to their course.
    """
    start, end = period_start(period), period_end(period)
    member_then = exists().where(
        Membership.user_id == LessonView.user_id, Membership.starts_at <= LessonView.opened_at,
        Membership.ends_at > LessonView.opened_at)
    enrolled_then = exists().where(
        Enrollment.user_id == LessonView.user_id, Enrollment.course_id == LessonView.course_id,
        Enrollment.granted_at <= LessonView.opened_at,
        or_(Enrollment.revoked_at.is_(None), Enrollment.revoked_at > LessonView.opened_at),
        # A purchase whose access period had ended opened nothing: the membership did.
        or_(Enrollment.expires_at.is_(None), Enrollment.expires_at > LessonView.opened_at))
    authors = union_all(  # (course, user) of each course's instructor and co-authors
        select(Course.id.label("course_id"), Instructor.user_id)
        .join(Instructor, Instructor.id == Course.instructor_id),
        select(CourseAuthor.course_id, Instructor.user_id)
        .join(Instructor, Instructor.id == CourseAuthor.instructor_id),
    ).subquery()
    own_author = exists().where(authors.c.course_id == LessonView.course_id, authors.c.user_id == LessonView.user_id)
    opened = (
        select(LessonView.course_id, LessonView.user_id, LessonView.lesson_id)
        .where(and_(LessonView.opened_at >= start, LessonView.opened_at < end), member_then, ~enrolled_then,
               ~own_author)
        .distinct()
        .subquery()
    )
    rows = db.session.execute(
        select(opened.c.course_id, func.count()).group_by(opened.c.course_id).order_by(opened.c.course_id)
    )
    return [(course_id, count) for course_id, count in rows]


def share_month(period: str) -> MembershipPool:
    """Share out an ended month's pool (once: a month already shared is returned as is)."""
    done = db.session.scalar(select(MembershipPool).where(MembershipPool.period == period))
    if done is not None:
        return done
    if period >= period_of(now()):
        raise ValueError(f"{period} has not ended")
    pool_fen = month_pool_fen(period)
    opens = month_opens(period)
    total_opens = sum(count for _, count in opens)
    pool = MembershipPool(period=period, pool_fen=pool_fen, opens=total_opens, allocated_at=now())
    db.session.add(pool)
    db.session.flush()
    if pool_fen == 0:
        pool.memo = "no membership revenue for this month"
    elif total_opens == 0:
        pool.memo = "no lesson opened by a member: the pool stays with the platform"
        pool.entry_id = post_entry(
            POOL_ENTRY, f"membership_pool:{period}",
            [(MEMBERSHIP_POOL, pool_fen), (accounts.PLATFORM_REVENUE, -pool_fen)],
            memo=f"membership pool {period} ({display_yuan(pool_fen)}): {pool.memo}")
    else:
        pool.memo = f"{total_opens} lesson opens by members"
        _share_by_opens(pool, opens)
    db.session.flush()
    return pool


def _share_by_opens(pool: MembershipPool, opens: list[tuple[int, int]]) -> None:
    course_parts = allocate(pool.pool_fen, [count for _, count in opens])
    shares: list[MembershipPoolShare] = []
    owed: dict[int, int] = defaultdict(int)
    for (course_id, count), course_fen in zip(opens, course_parts):
        course = db.session.get(Course, course_id)
        authors = authors_of(course)
        for (instructor_id, _weight), part in zip(authors, allocate(course_fen, [w for _, w in authors])):
            owed[instructor_id] += part
            shares.append(MembershipPoolShare(
                pool_id=pool.id, course_id=course_id, instructor_id=instructor_id, course_title=course.title_zh,
                opens=count, course_fen=course_fen, share_fen=part))
    legs = [(MEMBERSHIP_POOL, pool.pool_fen)]
    legs += [(accounts.instructor_available(instructor_id), -part) for instructor_id, part in owed.items()]
    pool.entry_id = post_entry(
        POOL_ENTRY, f"membership_pool:{pool.period}", legs,
        memo=f"membership pool {pool.period} ({display_yuan(pool.pool_fen)}) shared by {pool.memo}")
    for share in shares:
        share.entry_id = pool.entry_id
    db.session.add_all(shares)


def due_periods() -> list[str]:
    """Ended months not yet shared out, from the first month a membership ran in."""
    first = db.session.scalar(select(func.min(Membership.starts_at)))
    if first is None:
        return []
    last = previous_period(period_of(now()))
    shared = set(db.session.scalars(select(MembershipPool.period)))
    return [period for period in periods_between(period_of(first), last) if period not in shared]
