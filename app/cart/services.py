"""The learner's server-side cart. Services flush, never commit (DESIGN.md §3)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from app.cart.coupons import CouponError, check_coupon, find_coupon
from app.cart.models import Cart, CartItem
from app.cart.pricing import PriceLine, Quote, quote
from app.catalog.models import Course
from app.catalog.services import owned_course_ids
from app.extensions import db
from app.timeutil import now


class CartError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CartView:
    courses: tuple[Course, ...]
    quote: Quote
    coupon_code: str | None
    coupon_error: CouponError | None


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
        raise CartError("course_not_found", "This course does not exist.")
    if course_id in owned_course_ids(user_id):
        raise CartError("course_owned", "You already own this course.")
    cart = cart_for(user_id)
    if any(item.course_id == course_id for item in cart.items):
        raise CartError("already_in_cart", "This course is already in your cart.")
    cart.items.append(CartItem(course_id=course_id))
    db.session.flush()


def remove_course(user_id: int, course_id: int) -> None:
    cart = cart_for(user_id)
    for item in list(cart.items):
        if item.course_id == course_id:
            cart.items.remove(item)
    db.session.flush()


def apply_coupon(user_id: int, code: str) -> None:
    """Remember a coupon on the cart after checking it against the cart as it is now."""
    cart = cart_for(user_id)
    coupon = find_coupon(code)
    check_coupon(coupon, user_id, price_lines(cart_courses(cart)), now())
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


def price_lines(courses: list[Course]) -> list[PriceLine]:
    return [PriceLine(course.id, course.price_fen) for course in courses]


def view_cart(user_id: int) -> CartView:
    """The cart priced as checkout would price it; a coupon that stopped applying is shown
    with its reason and left out of the price."""
    cart = cart_for(user_id)
    courses = cart_courses(cart)
    lines = price_lines(courses)
    discount = None
    coupon_error = None
    if cart.coupon_code and lines:
        try:
            discount = check_coupon(find_coupon(cart.coupon_code), user_id, lines, now())
        except CouponError as error:
            coupon_error = error
    return CartView(tuple(courses), quote(lines, tax_rate(), discount), cart.coupon_code, coupon_error)
