"""Paying an order from the balance, as checkout does when the learner chooses it.

Flush only; `place` (app/checkout/services.py) calls these under the learner's row lock,
so two checkouts of one learner never read the same balance and both spend it.
"""
from __future__ import annotations

from sqlalchemy import select

from app import followups
from app.catalog.models import Enrollment
from app.checkout.models import Order
from app.extensions import db
from app.payments.settlement import grant_enrollments
from app.payments.transitions import compare_and_set
from app.timeutil import now
from app.wallet.holds import post_wallet_sale, wallet_balance
from app.wallet.tiers import spend_order


def balance_part(user_id: int, total_fen: int, use: str) -> tuple[int, int]:
    """(paid, bonus) the balance puts towards an order of ``total_fen``: nothing, as much
    as it holds up to the total ("part": a channel collects the rest), or the whole
    total ("full"; the caller refuses when it falls short)."""
    if use not in ("full", "part"):
        return 0, 0
    balance = wallet_balance(user_id)
    return spend_order(balance.paid_fen, balance.bonus_fen, total_fen)


def pay_in_full(order: Order) -> None:
    """Book a new pending order whose balance part is its whole total: paid at once, with
    the same legs, enrollments and follow-up as a channel payment."""
    order_id, user_id = order.id, order.user_id
    course_ids = [line.course_id for line in order.lines]
    post_wallet_sale(order)
    if not compare_and_set(Order, order_id, "order", "pending", "pay", paid_at=now()):
        raise RuntimeError(f"order {order_id} was not pending")  # a new order always is
    enrollments = db.session.execute(
        select(Enrollment.course_id, Enrollment.revoked_at)
        .where(Enrollment.user_id == user_id, Enrollment.course_id.in_(course_ids))
    ).all()
    grant_enrollments(db.session.get(Order, order_id), enrollments)  # cart orders: no renewal lines
    followups.order_paid(order_id)

