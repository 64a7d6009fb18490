from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.timeutil import system_now

if TYPE_CHECKING:
    from app.catalog.models import Course
    from app.earnings.models import OrderLineShare

ORDER_STATUSES = ("pending", "paid", "partially_refunded", "refunded", "closed")


# What a top-up is called where an order's title goes (the channel's subject, a receipt's
# one item); in Chinese, as course titles are stored.
TOPUP_TITLE = "余额充值"
MEMBERSHIP_TITLE = "会员订阅"

class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'paid', 'partially_refunded', 'refunded', 'closed')",
            name="status",
        ),
        CheckConstraint("subtotal_fen >= 0", name="subtotal_fen"),
        CheckConstraint("discount_fen >= 0 AND discount_fen <= subtotal_fen", name="discount_fen"),
        CheckConstraint("tax_fen >= 0", name="tax_fen"),
        CheckConstraint("total_fen = subtotal_fen - discount_fen + tax_fen", name="total_fen"),
        # Prepaid balance (app/wallet): what of the total the balance paid, paid money and
        # bonus apart; the rest, if any, is the channel's. A top-up's bonus is its own.
        CheckConstraint("kind IN ('course', 'topup', 'membership')", name="kind"),
        CheckConstraint("wallet_paid_fen >= 0 AND wallet_bonus_fen >= 0"
                        " AND wallet_paid_fen + wallet_bonus_fen <= total_fen", name="wallet_fen"),
        CheckConstraint("topup_bonus_fen >= 0", name="topup_bonus_fen"),
        # An app client's retried POST finds its order by this key (per user).
        UniqueConstraint("user_id", "idempotency_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_no: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    subtotal_fen: Mapped[int]
    discount_fen: Mapped[int]
    tax_fen: Mapped[int]
    total_fen: Mapped[int]
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id"))
    coupon_code: Mapped[str | None] = mapped_column(String(40))
    expires_at: Mapped[datetime]
    # Indexed for the back office's date filters over a million orders (bench/).
    created_at: Mapped[datetime] = mapped_column(default=system_now, index=True)
    paid_at: Mapped[datetime | None] = mapped_column(index=True)
    closed_at: Mapped[datetime | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    # ``topup`` and ``membership`` orders have no lines: paying one credits the learner's
    # balance (app/wallet), or opens every course for the plan's period (app/membership).
    kind: Mapped[str] = mapped_column(String(10), default="course", server_default="course")
    wallet_paid_fen: Mapped[int] = mapped_column(default=0, server_default="0")
    wallet_bonus_fen: Mapped[int] = mapped_column(default=0, server_default="0")
    topup_bonus_fen: Mapped[int] = mapped_column(default=0, server_default="0")

    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", order_by="OrderLine.id")


def channel_due_fen(order: Order) -> int:
    """What of the order a channel must collect: the total less what the balance paid."""
    return order.total_fen - order.wallet_paid_fen - order.wallet_bonus_fen


class OrderLine(db.Model):
    """A course as sold: prices, instructor and rate are snapshots, never re-read later."""

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("list_price_fen >= 0", name="list_price_fen"),
        CheckConstraint(
            "discount_fen >= 0 AND discount_fen <= list_price_fen", name="discount_fen"
        ),
        CheckConstraint("tax_fen >= 0", name="tax_fen"),
        CheckConstraint("amount_fen = list_price_fen - discount_fen + tax_fen", name="amount_fen"),
        CheckConstraint("commission_bps BETWEEN 0 AND 10000", name="commission_bps"),
        UniqueConstraint("order_id", "course_id"),
        CheckConstraint("kind IN ('purchase', 'renewal')", name="kind"),
        CheckConstraint("access_days > 0", name="access_days"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    instructor_id: Mapped[int] = mapped_column(ForeignKey("instructors.id"), index=True)
    commission_bps: Mapped[int]
    list_price_fen: Mapped[int]
    discount_fen: Mapped[int]
    tax_fen: Mapped[int]
    amount_fen: Mapped[int]
    # A first purchase or a renewal of access (app/renewal), and the days of access the
    # line buys as sold (NULL: lifetime), a snapshot like the prices.
    kind: Mapped[str] = mapped_column(String(10), default="purchase", server_default="purchase")
    access_days: Mapped[int | None]
    # Sold as part of this bundle (app/bundles): list_price_fen is then the course's part
    # of the bundle price, not the course's own price.
    bundle_id: Mapped[int | None] = mapped_column(ForeignKey("bundles.id"), index=True)

    order: Mapped[Order] = relationship(back_populates="lines")
    # For the course's English title: ``title`` keeps the Chinese one as sold.
    course: Mapped[Course] = relationship(viewonly=True)
    # Each author's part of the instructor share, fixed at sale (app/earnings).
    # Loaded with the lines, in one query for all of them: every posting of a line
    # (sale, refund, release) and every statement reads its shares.
    shares: Mapped[list[OrderLineShare]] = relationship(order_by="OrderLineShare.id", lazy="selectin")
