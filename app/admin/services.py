"""Staff edits of catalog rows (courses, instructors), each audited with before and
after. Flushes, never commits: the admin view is the boundary."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from app.audit.services import record
from app.catalog.models import Course, Instructor
from app.errors import ServiceError
from app.extensions import db


class EditError(ServiceError):
    """An edit that breaks a rule; ``message`` is for the staff member."""


@dataclass(frozen=True)
class CourseValues:
    title_zh: str
    title_en: str
    summary_zh: str
    summary_en: str
    price_fen: int
    is_published: bool
    # Access period and renewal price (app/renewal); None: lifetime, the list price.
    access_days: int | None = None
    renewal_price_fen: int | None = None


@dataclass(frozen=True)
class InstructorValues:
    name: str
    bio_zh: str
    bio_en: str


def _reason(reason: str) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise EditError("reason_required", "Please give a reason.")
    return text


def _apply(row: Any, target_type: str, values: Mapping[str, Any], staff_id: int, reason: str) -> None:
    """Set the changed columns and audit exactly those, before and after."""
    before = {name: getattr(row, name) for name, value in values.items() if getattr(row, name) != value}
    if not before:
        raise EditError("unchanged", "Nothing was changed.")
    for name in before:
        setattr(row, name, values[name])
    db.session.flush()
    after = {name: getattr(row, name) for name in before}
    record(staff_id, f"{target_type}.edit", target_type, row.id, reason, before, after)


def update_course(course_id: int, values: CourseValues, staff_id: int, reason: str) -> None:
    """Edit a course. Orders keep their snapshots, so a new price applies only to sales
    from now on. Rates are commission rules (app/earnings/rules.py), not edits."""
    text = _reason(reason)
    course = db.session.get(Course, course_id)
    if course is None:
        raise EditError("not_found", "No such course.")
    if not values.title_zh.strip() or not values.title_en.strip():
        raise EditError("title_required", "A course needs both titles.")
    if values.price_fen < 0:
        raise EditError("price", "A price cannot be negative.")
    if values.access_days is not None and values.access_days <= 0:
        raise EditError("access_days", "Days of access must be at least 1 (empty: lifetime).")
    if values.renewal_price_fen is not None and values.renewal_price_fen < 0:
        raise EditError("renewal_price", "A renewal price cannot be negative.")
    _apply(course, "course", vars(values), staff_id, text)


def update_instructor(instructor_id: int, values: InstructorValues, staff_id: int, reason: str) -> None:
    """Edit an instructor's name and bio."""
    text = _reason(reason)
    instructor = db.session.get(Instructor, instructor_id)
    if instructor is None:
        raise EditError("not_found", "No such instructor.")
    if not values.name.strip():
        raise EditError("name_required", "An instructor needs a name.")
    _apply(instructor, "instructor", vars(values), staff_id, text)
