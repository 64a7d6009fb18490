"""The learner's server-side cart. Services flush, never commit (DESIGN.md §3)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.audit.services import record
from app.bundles.models import Bundle
from app.bundles.services import BundleError, price_lines as bundle_price_lines, titles_of
from app.cart.coupons import CouponError, check_coupon, find_coupon, normalize_code
from app.cart.models import Cart, CartItem, Coupon
from app.cart.pricing import PriceLine, Quote, quote
from app.catalog.models import Course
from app.catalog.services import owned_course_ids
from app.errors import ServiceError
from app.extensions import db
from app.timeutil import now


class CartError(ServiceError):
    """A refusal of the cart, or of a coupon edit in the back office (said in English
    there); see `ServiceError`."""


@dataclass(frozen=True)
class CartView:
    courses: tuple[Course, ...]
    quote: Quote
    coupon_code: str | None
    coupon_error: CouponError | None
    # The bundle each course was added with (None: on its own), in the order of courses.
    bundles: tuple[Bundle | None, ...] = ()
    # Why bundles were taken out of the cart while it was read (staff changed them).
    notice: str | None = None


def tax_rate() -> Decimal:
    return current_app.config["TAX_RATE"]


def cart_for(user_id: int) -> Cart:
    cart = db.session.scalar(select(Cart).where(Cart.user_id == user_id))
    if cart is None:
        cart = Cart(user_id=user_id)
        db.session.add(cart)
        db.session.flush()
    return cart


def add_course(user_id: int, course_id: int) -> None:
    course = db.session.get(Course, course_id)
    if course is None or not course.is_published:
        raise CartError("course_not_found", _l("This course does not exist."))
    if course_id in owned_course_ids(user_id):
        raise CartError("course_owned", _l("You already own this course."))
    cart = cart_for(user_id)
    if any(item.course_id == course_id for item in cart.items):
        raise CartError("already_in_cart", _l("This course is already in your cart."))
    cart.items.append(CartItem(course_id=course_id))
    db.session.flush()


def add_bundle(user_id: int, bundle_id: int) -> None:
    """Put every course of a bundle in the cart, each marked as the bundle's.

    Refused, naming the courses, when the learner owns one of them already or has one in
    the cart: the bundle price is for the whole set (app/bundles/services.py)."""
    bundle = db.session.get(Bundle, bundle_id)
    if bundle is None or not bundle.is_published or not bundle.courses:
        raise CartError("bundle_not_found", _l("This bundle does not exist."))
    if any(not course.is_published for course in bundle.courses):
        raise CartError("bundle_not_for_sale", _l("This bundle cannot be bought right now."))
    owned_ids = owned_course_ids(user_id)
    owned = [course for course in bundle.courses if course.id in owned_ids]
    if owned:
        raise CartError("bundle_course_owned", _l(
            "You already own %(titles)s from this bundle, so it cannot be bought as a bundle. "
            "Add the other courses one by one instead.", titles=titles_of(owned)))
    cart = cart_for(user_id)
    in_cart = {item.course_id for item in cart.items}
    clashing = [course for course in bundle.courses if course.id in in_cart]
    if clashing:
        raise CartError("bundle_course_in_cart", _l(
            "%(titles)s is already in your cart; remove it first to buy this bundle.", titles=titles_of(clashing)))
    for course in bundle.courses:
        cart.items.append(CartItem(course_id=course.id, bundle_id=bundle.id))
    db.session.flush()


def remove_course(user_id: int, course_id: int) -> None:
    """Take a course out of the cart; a course of a bundle takes its whole bundle out."""
    cart = cart_for(user_id)
    bundle_ids = {item.bundle_id for item in cart.items if item.course_id == course_id and item.bundle_id}
    for item in list(cart.items):
        if item.course_id == course_id or (item.bundle_id is not None and item.bundle_id in bundle_ids):
            cart.items.remove(item)
    db.session.flush()


def apply_coupon(user_id: int, code: str) -> None:
    """Remember a coupon on the cart after checking it against the cart as it is now."""
    cart = cart_for(user_id)
    coupon = find_coupon(code)
    check_coupon(coupon, user_id, cart_price_lines(cart), now())
    cart.coupon_code = coupon.code
    db.session.flush()


def clear_coupon(user_id: int) -> None:
    cart_for(user_id).coupon_code = None
    db.session.flush()


def clear_cart(user_id: int) -> None:
    cart = cart_for(user_id)
    cart.items.clear()
    cart.coupon_code = None
    db.session.flush()


def cart_courses(cart: Cart) -> list[Course]:
    return [item.course for item in cart.items]


def bundle_of(cart: Cart) -> dict[int, int]:
    """Course id -> the bundle it was added with, for the courses added with one."""
    return {item.course_id: item.bundle_id for item in cart.items if item.bundle_id is not None}


def cart_price_lines(cart: Cart) -> list[PriceLine]:
    """The cart's lines as checkout prices them: a bundle's courses at their parts of it."""
    return bundle_price_lines(cart_courses(cart), bundle_of(cart))


def _drop_changed_bundles(cart: Cart) -> str | None:
    """Take out the courses of bundles no longer sold as they were added (each bundle
    checked on its own: the others stay); returns why, or None."""
    reasons = []
    for bundle_id in sorted(set(bundle_of(cart).values())):
        items = [item for item in cart.items if item.bundle_id == bundle_id]
        try:
            bundle_price_lines([item.course for item in items], {item.course_id: bundle_id for item in items})
        except BundleError as error:
            reasons.append(str(error.message))
            for item in items:
                cart.items.remove(item)
    if not reasons:
        return None
    db.session.flush()
    return " ".join(reasons)


def view_cart(user_id: int) -> CartView:
    """The cart priced as checkout would price it; a coupon that stopped applying is shown
    with its reason and left out of the price. Bundles staff changed since they were
    added are taken out, and the notice says so."""
    cart = cart_for(user_id)
    notice = _drop_changed_bundles(cart) if bundle_of(cart) else None
    courses = cart_courses(cart)
    lines = cart_price_lines(cart)
    discount = None
    coupon_error = None
    if cart.coupon_code and lines:
        try:
            discount = check_coupon(find_coupon(cart.coupon_code), user_id, lines, now())
        except CouponError as error:
            coupon_error = error
    bundles = tuple(item.bundle for item in cart.items)
    return CartView(tuple(courses), quote(lines, tax_rate(), discount), cart.coupon_code, coupon_error,
                    bundles, notice)


# Staff edits of coupons (the back office). Audited in the same transaction.

COUPON_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{2,39}$")
MIN_PERCENT_BPS = 100  # 1 %
MAX_PERCENT_BPS = 10000  # 100 %


@dataclass(frozen=True)
class CouponValues:
    """A coupon as staff entered it, already in fen, basis points and naive UTC.

    ``kind`` "percent" uses ``percent_off_bps`` (100..10000, i.e. 1..100 %); "fixed"
    uses ``amount_off_fen`` (> 0). The other of the two is ignored and stored as NULL.
    """

    code: str
    kind: str
    percent_off_bps: int | None = None
    amount_off_fen: int | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    min_amount_fen: int = 0
    max_redemptions: int | None = None
    per_user_limit: int = 1
    is_active: bool = True


def _coupon_snapshot(coupon: Coupon) -> dict[str, object]:
    return {
        "code": coupon.code, "kind": coupon.kind, "percent_off_bps": coupon.percent_off_bps,
        "amount_off_fen": coupon.amount_off_fen, "starts_at": coupon.starts_at,
        "ends_at": coupon.ends_at, "min_amount_fen": coupon.min_amount_fen,
        "max_redemptions": coupon.max_redemptions, "per_user_limit": coupon.per_user_limit,
        "is_active": coupon.is_active,
    }


def _checked_coupon_values(coupon_id: int | None, values: CouponValues, redeemed: int) -> dict[str, object]:
    """The column values to store, or CartError naming the first rule broken."""
    code = normalize_code(values.code or "")
    if not COUPON_CODE_RE.fullmatch(code):
        raise CartError("coupon_code", "A code has 3 to 40 letters, digits, '-' or '_'.")
    taken = db.session.scalar(select(Coupon.id).where(Coupon.code == code, Coupon.id != (coupon_id or 0)))
    if taken is not None:
        raise CartError("coupon_code_taken", f"The code {code} is already used by another coupon.")
    if values.kind == "percent":
        bps = values.percent_off_bps
        if bps is None or not MIN_PERCENT_BPS <= bps <= MAX_PERCENT_BPS:
            raise CartError("coupon_percent", "A percentage coupon takes 1 % to 100 % off.")
        amounts: dict[str, int | None] = {"percent_off_bps": bps, "amount_off_fen": None}
    elif values.kind == "fixed":
        if values.amount_off_fen is None or values.amount_off_fen <= 0:
            raise CartError("coupon_amount", "A fixed coupon takes a positive amount off.")
        amounts = {"percent_off_bps": None, "amount_off_fen": values.amount_off_fen}
    else:
        raise CartError("coupon_kind", "A coupon is a percentage or a fixed amount.")
    if values.starts_at and values.ends_at and values.starts_at >= values.ends_at:
        raise CartError("coupon_window", "The coupon must start before it ends.")
    if values.min_amount_fen < 0:
        raise CartError("coupon_minimum", "The minimum order amount cannot be negative.")
    if values.max_redemptions is not None and values.max_redemptions < max(redeemed, 1):
        raise CartError("coupon_limit", f"The total limit must be at least {max(redeemed, 1)}.")
    if values.per_user_limit < 1:
        raise CartError("coupon_per_user", "Each learner must be able to use it at least once.")
    fields = asdict(values)
    fields.update(amounts, code=code)
    return fields


def save_coupon(coupon_id: int | None, values: CouponValues, staff_id: int, reason: str) -> int:
    """Create (``coupon_id`` None) or edit a coupon; returns its id.

    Raises CartError when a rule is broken (nothing is written then). The audit entry
    holds the coupon before and after, and the staff member's reason.
    """
    text = " ".join((reason or "").split())
    if not text:
        raise CartError("reason_required", "Please give a reason.")
    coupon = db.session.get(Coupon, coupon_id) if coupon_id is not None else Coupon(redeemed_count=0)
    if coupon is None:
        raise CartError("coupon_not_found", "No such coupon.")
    before = _coupon_snapshot(coupon) if coupon_id is not None else None
    for name, value in _checked_coupon_values(coupon_id, values, coupon.redeemed_count or 0).items():
        setattr(coupon, name, value)
    if coupon_id is None:
        coupon.created_at = now()
        db.session.add(coupon)
    db.session.flush()
    action = "coupon.create" if coupon_id is None else "coupon.edit"
    record(staff_id, action, "coupon", coupon.id, text, before, _coupon_snapshot(coupon))
    return coupon.id
