"""Buying a membership, starting it when paid, and the access it gives.

A membership is an order with no course lines (`checkout.services.open_order`) and a
`Membership` row keyed by it. Its price is taxed as a course is; no coupon applies.
Paying it books, in one balanced entry: the channel's money and fee, the tax, the
instructor pool (``pool_bps`` of the amount net of tax, rounded half up, held on
`MEMBERSHIP_POOL` until its months are shared out, app/membership/pools.py) and the
platform's revenue, which keeps the rest. A membership cannot be refunded through the
refund form: it has no lines to choose.

Services flush, never commit (DESIGN.md §3).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Select, func, select

from app.accounts.models import User
from app.cart.services import tax_rate
from app.checkout.models import Order
from app.errors import ServiceError
from app.extensions import db
from app.ledger import accounts
from app.ledger.services import post_entry
from app.membership.models import Membership, MembershipPlan
from app.money import apply_bps, round_fen
from app.timeutil import now

# Membership money owed to instructors and not yet shared out by month: a liability.
MEMBERSHIP_POOL = "membership:instructor_pool"
SALE_ENTRY = "membership_sale"


class MembershipError(ServiceError):
    """A refusal of this service; see `ServiceError`."""


def active_plans() -> list[MembershipPlan]:
    return list(db.session.scalars(
        select(MembershipPlan).where(MembershipPlan.is_active).order_by(MembershipPlan.price_fen)))


def _current(user_id: int, at: datetime) -> Select:
    return select(Membership).where(
        Membership.user_id == user_id, Membership.starts_at <= at, Membership.ends_at > at)


def current_membership(user_id: int) -> Membership | None:
    """The membership giving access now, if any."""
    return db.session.scalar(_current(user_id, now()).order_by(Membership.ends_at).limit(1))


def is_member(user_id: int) -> bool:
    return bool(db.session.scalar(select(_current(user_id, now()).exists())))


def member_until(user_id: int) -> datetime | None:
    """The end of the learner's last paid period, if it lies ahead (periods bought while
    one runs follow it)."""
    end = db.session.scalar(select(func.max(Membership.ends_at)).where(Membership.user_id == user_id))
    return end if end is not None and end > now() else None


def membership_price(plan: MembershipPlan) -> tuple[int, int]:
    """(price, tax) in fen: price × (1 + tax rate), rounded once, half up."""
    total_fen = round_fen(Decimal(plan.price_fen) * (1 + tax_rate()))
    return plan.price_fen, total_fen - plan.price_fen


def membership_of_order(order_id: int) -> Membership | None:
    return db.session.scalar(select(Membership).where(Membership.order_id == order_id))


def start_membership(order: Order, channel: str, attempt_id: int, fee_fen: int) -> None:
    """The membership's order is paid: book the money and open its period, which starts
    at payment, or when the learner's paid period still running ends."""
    membership = membership_of_order(order.id)
    if membership is None:
        raise LookupError(f"order {order.order_no} has no course lines and no membership")
    paid_at = order.paid_at or now()
    # The learner's lock: two of their memberships paid at once must not both start
    # after the same running one (they would cover the same days).
    db.session.execute(select(User.id).where(User.id == order.user_id).with_for_update())
    running_until = db.session.scalar(
        select(func.max(Membership.ends_at)).where(Membership.user_id == order.user_id,
                                                   Membership.id != membership.id))
    membership.starts_at = max(paid_at, running_until) if running_until else paid_at
    membership.ends_at = membership.starts_at + timedelta(days=membership.period_days)
    net_fen = order.total_fen - order.tax_fen
    membership.pool_fen = apply_bps(net_fen, membership.pool_bps)
    legs = [
        (accounts.channel(channel), order.total_fen - fee_fen),
        (accounts.CHANNEL_FEES, fee_fen),
        (accounts.TAX_PAYABLE, -order.tax_fen),
        (MEMBERSHIP_POOL, -membership.pool_fen),
        (accounts.PLATFORM_REVENUE, -(net_fen - membership.pool_fen)),
    ]
    post_entry(SALE_ENTRY, f"payment:{attempt_id}", legs, order_id=order.id,
               memo=f"membership order {order.order_no} paid by {channel}")
    db.session.flush()
