"""Placing a membership order: an order of kind ``membership`` with no course lines.
Kept apart from `app.membership.services`, which payments import to book a membership,
because it builds on checkout."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.accounts.models import User
from app.checkout.models import Order
from app.checkout.services import PlacedOrder, open_order
from app.extensions import db
from app.membership.models import Membership, MembershipPlan
from app.membership.services import MembershipError, membership_price
from app.timeutil import now


def place_membership_order(user_id: int, plan_id: int, channel: str) -> PlacedOrder:
    """A pending order for one period of a plan; the learner's order for the same plan
    still waiting for payment is returned instead of a second one."""
    plan = db.session.get(MembershipPlan, plan_id)
    if plan is None or not plan.is_active:
        raise MembershipError("plan_not_found", _l("This membership plan is not available."))
    # Serialise one learner's checkouts before looking for a waiting order, as cart
    # checkout does: a double click must not open two orders with two QR codes.
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update())
    waiting = db.session.scalar(
        select(Order.id).join(Membership, Membership.order_id == Order.id)
        .where(Membership.user_id == user_id, Membership.plan_id == plan_id, Order.status == "pending",
               Order.expires_at > now())
        .order_by(Order.id).limit(1))
    if waiting is not None:
        return PlacedOrder(waiting)
    price_fen, tax_fen = membership_price(plan)
    placed = open_order(user_id, "membership", price_fen, tax_fen, channel)
    db.session.add(Membership(user_id=user_id, plan_id=plan.id, order_id=placed.order_id, title=plan.title_zh,
                              period_days=plan.period_days, pool_bps=plan.pool_bps, created_at=now()))
    db.session.flush()
    return placed
