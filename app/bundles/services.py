"""Bundle reads and bundle prices.

A bundle's price is allocated to its courses in proportion to their list prices, by
largest remainder (`app.money.allocate`), so the parts sum to the bundle price exactly;
ties in the remainder go to the course with the lower id. The parts are computed when
the cart is priced and again at checkout, then fixed on the order lines.

Courses the learner owns already: a bundle holding one is refused, naming it, when it
is put in the cart (`cart.services.add_bundle`), and checkout refuses any owned course
as it always has; the price is not re-allocated over the rest, because a bundle price is
an offer for the whole set and a smaller set at a shrunken price is a price nobody set.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.bundles.models import Bundle
from app.cart.pricing import PriceLine
from app.catalog.models import Course
from app.errors import ServiceError
from app.extensions import db
from app.i18n import in_reader_language
from app.money import allocate


class BundleError(ServiceError):
    """A bundle that cannot be sold as asked; see `ServiceError`."""


def published_bundles() -> list[Bundle]:
    """Bundles on sale, their courses loaded with them (the catalog shows them all)."""
    return list(db.session.scalars(
        select(Bundle).where(Bundle.is_published).order_by(Bundle.id).options(selectinload(Bundle.courses))))


def published_bundle(slug: str) -> Bundle | None:
    return db.session.scalar(select(Bundle).where(Bundle.slug == slug, Bundle.is_published))


def course_parts(price_fen: int, list_prices_fen: Sequence[int]) -> list[int]:
    """The bundle price split over its courses by their list prices (largest remainder)."""
    return allocate(price_fen, list_prices_fen)


def parts_of(bundle: Bundle) -> dict[int, int]:
    """Course id -> that course's part of the bundle price."""
    parts = course_parts(bundle.price_fen, [course.price_fen for course in bundle.courses])
    return {course.id: part for course, part in zip(bundle.courses, parts)}


def titles_of(courses: Sequence[Course]) -> LazyString:
    return in_reader_language("、".join(course.title_zh for course in courses),
                              ", ".join(course.title_en for course in courses))


def price_lines(courses: Sequence[Course], bundle_of: Mapping[int, int]) -> list[PriceLine]:
    """Each course as pricing takes it: at its own list price, or, when ``bundle_of``
    maps it to a bundle, at its part of that bundle's price.

    Raises `BundleError` when a bundle is no longer sold, or its courses are no longer
    exactly the ones taken with it (staff changed it meanwhile): the learner sees the
    change instead of paying a price computed over another set of courses."""
    parts: dict[int, int] = {}
    for bundle_id in sorted(set(bundle_of.values())):
        bundle = db.session.get(Bundle, bundle_id)
        taken = {course_id for course_id, of in bundle_of.items() if of == bundle_id}
        if bundle is None or not bundle.is_published:
            raise BundleError("bundle_not_found", _l("A bundle in your cart is no longer sold."))
        if {course.id for course in bundle.courses} != taken:
            raise BundleError("bundle_changed", _l("The bundle %(title)s has changed; remove it and add it again.",
                                                   title=in_reader_language(bundle.title_zh, bundle.title_en)))
        parts.update(parts_of(bundle))
    return [PriceLine(course.id, parts[course.id] if course.id in bundle_of else course.price_fen)
            for course in courses]
