from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Column, CheckConstraint, ForeignKey, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.catalog.models import Course
from app.extensions import db
from app.timeutil import system_now

if TYPE_CHECKING:
    from app.bundles.models import Bundle

coupon_courses = Table(
    "coupon_courses",
    db.metadata,
    Column("coupon_id", ForeignKey("coupons.id"), primary_key=True),
    Column("course_id", ForeignKey("courses.id"), primary_key=True),
)


class Cart(db.Model):
    __tablename__ = "carts"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    coupon_code: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(default=system_now, onupdate=system_now)

    items: Mapped[list[CartItem]] = relationship(
        back_populates="cart", order_by="CartItem.id", cascade="all, delete-orphan"
    )


class CartItem(db.Model):
    __tablename__ = "cart_items"
    __table_args__ = (UniqueConstraint("cart_id", "course_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("carts.id"), index=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    # Added with this bundle (app/bundles): priced at its part of the bundle price.
    bundle_id: Mapped[int | None] = mapped_column(ForeignKey("bundles.id"))
    added_at: Mapped[datetime] = mapped_column(default=system_now)

    cart: Mapped[Cart] = relationship(back_populates="items")
    course: Mapped[Course] = relationship()
    bundle: Mapped[Bundle | None] = relationship()


class Coupon(db.Model):
    """An order-level discount: a percentage or a fixed amount, optionally for some courses."""

    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint("kind IN ('percent', 'fixed')", name="kind"),
        CheckConstraint(
            "(kind = 'percent' AND percent_off_bps BETWEEN 1 AND 10000 AND amount_off_fen IS NULL)"
            " OR (kind = 'fixed' AND amount_off_fen > 0 AND percent_off_bps IS NULL)",
            name="value",
        ),
        CheckConstraint("min_amount_fen >= 0", name="min_amount_fen"),
        CheckConstraint("max_redemptions IS NULL OR max_redemptions > 0", name="max_redemptions"),
        CheckConstraint("per_user_limit > 0", name="per_user_limit"),
        CheckConstraint(
            "max_redemptions IS NULL OR redeemed_count <= max_redemptions", name="redeemed_count"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    percent_off_bps: Mapped[int | None]
    amount_off_fen: Mapped[int | None]
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    min_amount_fen: Mapped[int] = mapped_column(default=0)
    max_redemptions: Mapped[int | None]
    per_user_limit: Mapped[int] = mapped_column(default=1)
    # Counts live redemptions; raised by compare-and-set at checkout, lowered on release.
    redeemed_count: Mapped[int] = mapped_column(default=0)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=system_now)

    courses: Mapped[list[Course]] = relationship(secondary=coupon_courses)


class CouponRedemption(db.Model):
    """A coupon used by an order; released (not deleted) if the order closes unpaid."""

    __tablename__ = "coupon_redemptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=system_now)
    released_at: Mapped[datetime | None]
