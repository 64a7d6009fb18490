"""The prepaid balance in the journal: what a learner holds, and the entries that move it.

Signs as everywhere in the journal: the wallet accounts are the platform's debts to the
learner, so a balance of ¥20 is a credit of -2000 on the account. Flush only.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from app.checkout.models import Order
from app.extensions import db
from app.ledger import accounts
from app.ledger.models import Posting
from app.ledger.services import line_legs, post_entry


@dataclass(frozen=True)
class WalletBalance:
    paid_fen: int
    bonus_fen: int

    @property
    def total_fen(self) -> int:
        return self.paid_fen + self.bonus_fen


def wallet_balance(user_id: int) -> WalletBalance:
    """The learner's balance, from the postings. A spend must hold the learner's row lock
    (`place` in app/checkout/services.py takes it) between reading this and posting."""
    paid_account, bonus_account = accounts.learner_wallet(user_id), accounts.learner_wallet_bonus(user_id)
    sums = dict(db.session.execute(
        select(Posting.account, func.sum(Posting.amount_fen))
        .where(Posting.account.in_((paid_account, bonus_account)))
        .group_by(Posting.account)
    ).all())
    return WalletBalance(-(sums.get(paid_account) or 0), -(sums.get(bonus_account) or 0))


def _spent(order: Order) -> list[tuple[str, int]]:
    return [(accounts.learner_wallet(order.user_id), order.wallet_paid_fen),
            (accounts.learner_wallet_bonus(order.user_id), order.wallet_bonus_fen)]


def post_topup(order: Order, channel: str, attempt_id: int, fee_fen: int) -> int:
    """A top-up paid at its channel: the amount to the learner's paid balance, its bonus
    (a platform expense) to the bonus balance. Booked under the payment's source key, as
    a sale is, so the same payment can never be booked twice."""
    legs = [
        (accounts.channel(channel), order.total_fen - fee_fen),
        (accounts.CHANNEL_FEES, fee_fen),
        (accounts.learner_wallet(order.user_id), -order.total_fen),
        (accounts.WALLET_BONUS_EXPENSE, order.topup_bonus_fen),
        (accounts.learner_wallet_bonus(order.user_id), -order.topup_bonus_fen),
    ]
    return post_entry("topup", f"payment:{attempt_id}", legs, order_id=order.id,
                      memo=f"top-up {order.order_no} paid by {channel}")


def post_wallet_sale(order: Order) -> int:
    """An order the balance pays in full: the same tax, instructor and platform legs as a
    channel sale, paid from the balance instead of a channel."""
    legs = _spent(order)
    for line in order.lines:
        legs.extend(line_legs(line))
    return post_entry("wallet_payment", f"wallet_payment:{order.id}", legs, order_id=order.id,
                      memo=f"order {order.order_no} paid from the balance")


def post_hold(order: Order) -> int:
    """Set the balance part of an order aside while a channel collects the rest."""
    legs = _spent(order) + [(accounts.wallet_hold(order.id), -(order.wallet_paid_fen + order.wallet_bonus_fen))]
    return post_entry("wallet_hold", f"wallet_hold:{order.id}", legs, order_id=order.id,
                      memo=f"balance held for order {order.order_no}")


def release_hold(order_id: int) -> int | None:
    """An order closed unpaid: its held balance goes back, paid money and bonus as they
    came. Call once, when the order closes (its compare-and-set makes that once)."""
    order = db.session.get(Order, order_id)
    if order is None or not (order.wallet_paid_fen or order.wallet_bonus_fen):
        return None
    legs = [(account, -amount) for account, amount in _spent(order)]
    legs.append((accounts.wallet_hold(order.id), order.wallet_paid_fen + order.wallet_bonus_fen))
    return post_entry("wallet_release", f"wallet_release:{order.id}", legs, order_id=order.id,
                      memo=f"order {order.order_no} closed: held balance returned")
