"""Coupon rules: whether a code may be used by this learner on these lines, and the
redemption counters that enforce the total and per-user limits."""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from app.cart.models import Coupon, CouponRedemption
from app.cart.pricing import Discount, PriceLine, eligible_subtotal
from app.errors import ServiceError
from app.extensions import db
from app.money import display_yuan


class CouponError(ServiceError):
    """A coupon that cannot be used; ``code`` is stable, ``message`` is for the learner."""


def normalize_code(code: str) -> str:
    return code.strip().upper()


def find_coupon(code: str) -> Coupon:
    normalized = normalize_code(code)
    if not normalized or len(normalized) > 40 or not normalized.isprintable():
        raise CouponError("coupon_not_found", _l("This coupon code does not exist."))
    coupon = db.session.scalar(select(Coupon).where(Coupon.code == normalized))
    if coupon is None:
        raise CouponError("coupon_not_found", _l("This coupon code does not exist."))
    return coupon


def as_discount(coupon: Coupon) -> Discount:
    scope = frozenset(course.id for course in coupon.courses) if coupon.courses else None
    return Discount(
        percent_off_bps=coupon.percent_off_bps,
        amount_off_fen=coupon.amount_off_fen,
        course_ids=scope,
    )


def live_redemptions(coupon_id: int, user_id: int) -> int:
    return db.session.scalar(
        select(func.count(CouponRedemption.id)).where(
            CouponRedemption.coupon_id == coupon_id,
            CouponRedemption.user_id == user_id,
            CouponRedemption.released_at.is_(None),
        )
    ) or 0


def check_coupon(
    coupon: Coupon, user_id: int, lines: Sequence[PriceLine], now: datetime
) -> Discount:
    """The coupon's discount for these lines, or a `CouponError` saying why not."""
    if not coupon.is_active:
        raise CouponError("coupon_inactive", _l("This coupon is no longer active."))
    if coupon.starts_at is not None and now < coupon.starts_at:
        raise CouponError("coupon_not_started", _l("This coupon is not valid yet."))
    if coupon.ends_at is not None and now >= coupon.ends_at:
        raise CouponError("coupon_expired", _l("This coupon has expired."))
    if coupon.max_redemptions is not None and coupon.redeemed_count >= coupon.max_redemptions:
        raise CouponError("coupon_exhausted", _l("This coupon has been fully used."))
    if live_redemptions(coupon.id, user_id) >= coupon.per_user_limit:
        raise CouponError("coupon_user_limit", _l("You have already used this coupon."))
    discount = as_discount(coupon)
    eligible = eligible_subtotal(lines, discount)
    if eligible == 0:
        raise CouponError(
            "coupon_not_applicable", _l("This coupon does not apply to the courses in your cart.")
        )
    if eligible < coupon.min_amount_fen:
        raise CouponError(
            "coupon_min_amount",
            _l("This coupon needs a minimum of %(amount)s.", amount=display_yuan(coupon.min_amount_fen)),
        )
    return discount


def redeem(coupon: Coupon, user_id: int, order_id: int) -> None:
    """Count one use by compare-and-set, so concurrent checkouts cannot overshoot the limit."""
    result = db.session.execute(
        update(Coupon)
        .where(
            Coupon.id == coupon.id,
            (Coupon.max_redemptions.is_(None))
            | (Coupon.redeemed_count < Coupon.max_redemptions),
        )
        .values(redeemed_count=Coupon.redeemed_count + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise CouponError("coupon_exhausted", _l("This coupon has been fully used."))
    db.session.add(CouponRedemption(coupon_id=coupon.id, user_id=user_id, order_id=order_id))


def release(order_id: int, moment: datetime) -> bool:
    """Give back the use an unpaid, closed order made of its coupon; False if none."""
    return _toggle_redemption(order_id, released_at=moment)


def reclaim(order_id: int) -> bool:
    """A closed order was paid after all: its released use counts again.

    No limit check: the learner paid the discounted price, which the coupon allowed
    when the order was placed.
    """
    return _toggle_redemption(order_id, released_at=None)


def _toggle_redemption(order_id: int, released_at: datetime | None) -> bool:
    """Release (a moment) or reclaim (None) the order's redemption by compare-and-set,
    and move the coupon's counter with it; False when it already was so or is none."""
    was_live = released_at is not None
    moved = db.session.execute(
        update(CouponRedemption)
        .where(
            CouponRedemption.order_id == order_id,
            CouponRedemption.released_at.is_(None) if was_live
            else CouponRedemption.released_at.is_not(None),
        )
        .values(released_at=released_at)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        return False
    coupon_id = db.session.scalar(
        select(CouponRedemption.coupon_id).where(CouponRedemption.order_id == order_id)
    )
    db.session.execute(
        update(Coupon)
        .where(Coupon.id == coupon_id)
        .values(redeemed_count=Coupon.redeemed_count + (-1 if was_live else 1))
        .execution_options(synchronize_session=False)
    )
    return True
