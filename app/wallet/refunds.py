"""How a refund of an order paid (partly) by balance divides between the balance and the
channel. Flush only; read under the order's row lock (approval holds it).

The split is cumulative: the parts refunded so far are those of everything refunded so
far, rounded half up once, so however an order is refunded in pieces, refunding all of
it returns exactly what the channel, the paid balance and the bonus put in, and no piece
is ever negative (each rounding grows with the amount refunded).

Why not `allocate()` (largest remainder), which DESIGN.md §6 names for refunds: applied
to the running total it is not monotone (the Alabama paradox: one fen more in all can
give one source a fen less), so a later piece could owe a source a negative amount. Two
nested two-way splits, each rounded half up once, only ever grow.
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from app.checkout.models import Order, channel_due_fen
from app.extensions import db
from app.money import round_fen
from app.payments.models import Refund

# The refunds whose money is spoken for (app/payments/refund_workflow.py).
COMMITTED = ("approved", "processing", "succeeded", "failed")


def cumulative_parts(order: Order, refunded_fen: int) -> tuple[int, int, int]:
    """(channel, paid balance, bonus) of ``refunded_fen`` refunded of the order in all."""
    if order.total_fen <= 0:
        return 0, 0, 0
    channel = round_fen(Decimal(channel_due_fen(order)) * refunded_fen / order.total_fen)
    from_balance = refunded_fen - channel
    wallet_fen = order.wallet_paid_fen + order.wallet_bonus_fen
    paid = round_fen(Decimal(order.wallet_paid_fen) * from_balance / wallet_fen) if wallet_fen else 0
    return channel, paid, from_balance - paid


def wallet_parts(order: Order, refund: Refund) -> tuple[int, int]:
    """(paid, bonus) of ``refund`` that go back to the balance; the rest is the channel's."""
    if not (order.wallet_paid_fen or order.wallet_bonus_fen):
        return 0, 0
    amount, paid, bonus = db.session.execute(
        select(func.coalesce(func.sum(Refund.amount_fen), 0), func.coalesce(func.sum(Refund.wallet_paid_fen), 0),
               func.coalesce(func.sum(Refund.wallet_bonus_fen), 0))
        .where(Refund.order_id == order.id, Refund.kind == "customer", Refund.status.in_(COMMITTED),
               Refund.id != refund.id)
    ).one()
    _, paid_to, bonus_to = cumulative_parts(order, amount + refund.amount_fen)
    return paid_to - paid, bonus_to - bonus
