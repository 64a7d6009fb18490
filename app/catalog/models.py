from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.timeutil import system_now


class Instructor(db.Model):
    __tablename__ = "instructors"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    bio_zh: Mapped[str] = mapped_column(Text, default="")
    bio_en: Mapped[str] = mapped_column(Text, default="")

    courses: Mapped[list[Course]] = relationship(back_populates="instructor")


class Course(db.Model):
    __tablename__ = "courses"
    __table_args__ = (
        CheckConstraint("price_fen >= 0", name="price_fen"),
        CheckConstraint("renewal_price_fen >= 0", name="renewal_price_fen"),
        CheckConstraint("access_days > 0", name="access_days"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    instructor_id: Mapped[int] = mapped_column(ForeignKey("instructors.id"), index=True)
    title_zh: Mapped[str] = mapped_column(String(120))
    title_en: Mapped[str] = mapped_column(String(120))
    summary_zh: Mapped[str] = mapped_column(Text, default="")
    summary_en: Mapped[str] = mapped_column(Text, default="")
    price_fen: Mapped[int]
    # Two CSS colours of the drawn cover, so the catalog needs no network images.
    cover_from: Mapped[str] = mapped_column(String(9), default="#3b82f6")
    cover_to: Mapped[str] = mapped_column(String(9), default="#1e3a8a")
    is_published: Mapped[bool] = mapped_column(default=True)
    # Days of access a purchase or renewal buys; NULL is lifetime access (app/renewal).
    access_days: Mapped[int | None]
    # What a renewal costs; NULL charges the list price again.
    renewal_price_fen: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=system_now)

    instructor: Mapped[Instructor] = relationship(back_populates="courses")
    lessons: Mapped[list[Lesson]] = relationship(
        back_populates="course", order_by="Lesson.position"
    )


class Lesson(db.Model):
    __tablename__ = "lessons"
    __table_args__ = (UniqueConstraint("course_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), index=True)
    position: Mapped[int]
    title_zh: Mapped[str] = mapped_column(String(120))
    title_en: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text, default="")

    course: Mapped[Course] = relationship(back_populates="lessons")


class Enrollment(db.Model):
    """The right of a learner to study a course; granted once, by the paid order."""

    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("user_id", "course_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    granted_at: Mapped[datetime] = mapped_column(default=system_now)
    revoked_at: Mapped[datetime | None]
    # When access ends; NULL is lifetime. Past it the enrollment is expired, not revoked:
    # the learner may renew it (app/renewal).
    expires_at: Mapped[datetime | None]
    # The end date the last reminder was sent for, so each end date is reminded once.
    reminded_for_expiry: Mapped[datetime | None]

    course: Mapped[Course] = relationship()


class LessonView(db.Model):
    """Each opening of a lesson by a learner; refund policy and membership shares read it."""

    __tablename__ = "lesson_views"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id"), index=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), index=True)
    opened_at: Mapped[datetime] = mapped_column(default=system_now)
