"""Staff create and edit bundles in the back office; every change is audited. Flushes,
never commits: the admin view is the boundary. Orders keep their lines as sold, so a
change applies to sales from now on (and takes a changed bundle out of carts)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from app.audit.services import record
from app.bundles.models import Bundle
from app.catalog.models import Course
from app.errors import ServiceError
from app.extensions import db
from app.timeutil import now

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,79}$")
MAX_COURSES = 20


class BundleEditError(ServiceError):
    """An edit that breaks a rule; ``message`` is for the staff member (in English)."""


@dataclass(frozen=True)
class BundleValues:
    slug: str
    title_zh: str
    title_en: str
    price_fen: int
    course_slugs: tuple[str, ...]
    is_published: bool


def _snapshot(bundle: Bundle) -> dict[str, object]:
    return {"slug": bundle.slug, "title_zh": bundle.title_zh, "title_en": bundle.title_en,
            "price_fen": bundle.price_fen, "is_published": bundle.is_published,
            "courses": [course.slug for course in bundle.courses]}


def save_bundle(bundle_id: int | None, values: BundleValues, staff_id: int, reason: str) -> int:
    """Create (``bundle_id`` None) or edit a bundle; returns its id.

    A bundle has two courses or more, all different, and costs more than nothing and no
    more than its courses at list price: otherwise it is no offer."""
    text = " ".join((reason or "").split())
    if not text:
        raise BundleEditError("reason_required", "Please give a reason.")
    bundle = db.session.get(Bundle, bundle_id) if bundle_id is not None else Bundle(created_at=now())
    if bundle is None:
        raise BundleEditError("not_found", "No such bundle.")
    if not SLUG_RE.fullmatch(values.slug):
        raise BundleEditError("slug", "A slug has 2 to 80 lower-case letters, digits or '-'.")
    taken = db.session.scalar(select(Bundle.id).where(Bundle.slug == values.slug, Bundle.id != (bundle_id or 0)))
    if taken is not None:
        raise BundleEditError("slug_taken", f"The slug {values.slug} is already another bundle's.")
    if not values.title_zh.strip() or not values.title_en.strip():
        raise BundleEditError("title_required", "A bundle needs both titles.")
    slugs = list(dict.fromkeys(values.course_slugs))
    if len(slugs) != len(values.course_slugs):
        raise BundleEditError("duplicate", "Each course appears once.")
    if not 2 <= len(slugs) <= MAX_COURSES:
        raise BundleEditError("courses", f"A bundle has 2 to {MAX_COURSES} courses.")
    courses = list(db.session.scalars(select(Course).where(Course.slug.in_(slugs))))
    missing = sorted(set(slugs) - {course.slug for course in courses})
    if missing:
        raise BundleEditError("course_not_found", f"No course with the slug {', '.join(missing)}.")
    list_price = sum(course.price_fen for course in courses)
    if not 0 < values.price_fen <= list_price:
        raise BundleEditError("price", f"The price must be above zero and at most the courses' "
                                       f"list prices together ({list_price / 100:.2f} yuan).")
    before = _snapshot(bundle) if bundle_id is not None else None
    bundle.slug, bundle.title_zh, bundle.title_en = values.slug, values.title_zh.strip(), values.title_en.strip()
    bundle.price_fen, bundle.is_published = values.price_fen, values.is_published
    bundle.courses = sorted(courses, key=lambda course: course.id)
    if bundle_id is None:
        db.session.add(bundle)
    db.session.flush()
    after = _snapshot(bundle)
    if before == after:
        raise BundleEditError("unchanged", "Nothing was changed.")
    record(staff_id, "bundle.create" if bundle_id is None else "bundle.edit", "bundle", bundle.id, text,
           before, after)
    return bundle.id
