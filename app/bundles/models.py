"""Bundles: several courses sold together at one price.

A bundle is only a way of selling: checkout turns it into one order line per course, each
priced at that course's part of the bundle price, so refunds, earnings and statements
work on bundle lines exactly as on any other line.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, ForeignKey, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.catalog.models import Course
from app.extensions import db
from app.timeutil import system_now

bundle_courses = Table(
    "bundle_courses",
    db.metadata,
    Column("bundle_id", ForeignKey("bundles.id"), primary_key=True),
    Column("course_id", ForeignKey("courses.id"), primary_key=True),
)


class Bundle(db.Model):
    __tablename__ = "bundles"
    __table_args__ = (CheckConstraint("price_fen > 0", name="price_fen"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title_zh: Mapped[str] = mapped_column(String(120))
    title_en: Mapped[str] = mapped_column(String(120))
    price_fen: Mapped[int]
    is_published: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=system_now)

    # In course id order: the order the allocation and the pages use, stable across reads.
    courses: Mapped[list[Course]] = relationship(secondary=bundle_courses, order_by=Course.id)

    @property
    def list_price_fen(self) -> int:
        return sum(course.price_fen for course in self.courses)

    @property
    def saving_fen(self) -> int:
        """What the bundle saves on its courses bought one by one (never shown below zero:
        a course's list price may have fallen since staff set the bundle price)."""
        return max(0, self.list_price_fen - self.price_fen)
