"""Catalog reads and the learner's right to study."""
from __future__ import annotations

from sqlalchemy import select

from app.catalog.models import Course, Enrollment, Lesson, LessonView
from app.extensions import db
from app.timeutil import now


def published_courses() -> list[Course]:
    return list(
        db.session.scalars(select(Course).where(Course.is_published).order_by(Course.id))
    )


def owned_course_ids(user_id: int) -> set[int]:
    return set(
        db.session.scalars(
            select(Enrollment.course_id).where(
                Enrollment.user_id == user_id, Enrollment.revoked_at.is_(None)
            )
        )
    )


def expired_course_ids(user_id: int) -> set[int]:
    """Courses the learner holds whose access period has ended: they renew, not study."""
    return set(
        db.session.scalars(
            select(Enrollment.course_id).where(
                Enrollment.user_id == user_id, Enrollment.revoked_at.is_(None),
                Enrollment.expires_at <= now(),
            )
        )
    )


def is_enrolled(user_id: int, course_id: int) -> bool:
    return course_id in owned_course_ids(user_id)


def my_enrollments(user_id: int) -> list[Enrollment]:
    return list(
        db.session.scalars(
            select(Enrollment)
            .where(Enrollment.user_id == user_id, Enrollment.revoked_at.is_(None))
            .order_by(Enrollment.granted_at.desc())
        )
    )


def record_lesson_view(user_id: int, lesson: Lesson) -> None:
    db.session.add(
        LessonView(user_id=user_id, lesson_id=lesson.id, course_id=lesson.course_id, opened_at=now())
    )
    db.session.flush()
