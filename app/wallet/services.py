"""Top-ups and what the wallet page shows. Flush only; the views commit.

A top-up is an order of kind ``topup`` with no lines, paid through an ordinary payment
attempt: the QR code, callbacks, active queries, expiry and reconciliation are those of
any order. Settling it credits the balance (`post_topup`) instead of selling courses.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.checkout.models import Order
from app.checkout.services import new_attempt, unused_order_no
from app.errors import ServiceError
from app.extensions import db
from app.ledger import accounts
from app.ledger.models import JournalEntry, Posting
from app.money import display_yuan
from app.payments.registry import enabled_channels, unavailable_reason
from app.timeutil import now
from app.wallet.tiers import bonus_for


class WalletError(ServiceError):
    """A refusal of this service; see `ServiceError`."""


@dataclass(frozen=True)
class PlacedTopup:
    order_id: int
    order_no: str
    attempt_id: int


def topup_limits() -> tuple[int, int]:
    return current_app.config["WALLET_MIN_TOPUP_FEN"], current_app.config["WALLET_MAX_TOPUP_FEN"]


def bonus_tiers() -> tuple[tuple[int, int], ...]:
    return current_app.config["WALLET_BONUS_TIERS"]


def place_topup(user_id: int, amount_fen: int, channel: str) -> PlacedTopup:
    """A pending top-up order of ``amount_fen`` with its bonus fixed now, and its first
    attempt (not yet sent to the channel). Raises `WalletError`, changing nothing."""
    minimum, maximum = topup_limits()
    if amount_fen < minimum:
        raise WalletError("topup_below_minimum",
                          _l("A top-up must be at least %(amount)s.", amount=display_yuan(minimum)))
    if amount_fen > maximum:
        raise WalletError("topup_above_maximum",
                          _l("A top-up can be at most %(amount)s.", amount=display_yuan(maximum)))
    if channel not in enabled_channels():
        raise WalletError("unknown_channel", _l("This payment method is not available."))
    refusal = unavailable_reason(channel, amount_fen)
    if refusal is not None:
        raise WalletError("channel_unavailable", refusal)
    order = Order(
        order_no=unused_order_no(),
        user_id=user_id,
        kind="topup",
        status="pending",
        subtotal_fen=amount_fen,
        discount_fen=0,
        tax_fen=0,
        total_fen=amount_fen,
        topup_bonus_fen=bonus_for(amount_fen, bonus_tiers()),
        expires_at=now() + timedelta(minutes=current_app.config["ORDER_TTL_MINUTES"]),
        created_at=now(),
    )
    db.session.add(order)
    db.session.flush()
    return PlacedTopup(order.id, order.order_no, new_attempt(order, channel))


@dataclass(frozen=True)
class Movement:
    """One line of the wallet's history: an entry's effect on the paid and bonus balance."""

    at: datetime
    kind: str  # the journal entry's kind: topup, wallet_payment, wallet_hold, refund...
    order_no: str | None
    paid_fen: int  # positive: the balance grew
    bonus_fen: int


def history(user_id: int, limit: int = 100) -> list[Movement]:
    """The learner's balance movements, newest first, from the postings themselves."""
    paid_account, bonus_account = accounts.learner_wallet(user_id), accounts.learner_wallet_bonus(user_id)
    wallet_accounts = (paid_account, bonus_account)
    # The newest ``limit`` entries first, so a long history is never read whole.
    recent = (select(Posting.entry_id).where(Posting.account.in_(wallet_accounts))
              .group_by(Posting.entry_id).order_by(Posting.entry_id.desc()).limit(limit))
    rows = db.session.execute(
        select(JournalEntry.id, JournalEntry.created_at, JournalEntry.kind, Order.order_no,
               Posting.account, Posting.amount_fen)
        .join(Posting, Posting.entry_id == JournalEntry.id)
        .outerjoin(Order, Order.id == JournalEntry.order_id)
        .where(Posting.account.in_(wallet_accounts), JournalEntry.id.in_(recent.scalar_subquery()))
        .order_by(JournalEntry.id.desc())
    ).all()
    movements: dict[int, Movement] = {}
    for row in rows:
        found = movements.get(row.id) or Movement(row.created_at, row.kind, row.order_no, 0, 0)
        if row.account == paid_account:
            found = Movement(found.at, found.kind, found.order_no, found.paid_fen - row.amount_fen, found.bonus_fen)
        else:
            found = Movement(found.at, found.kind, found.order_no, found.paid_fen, found.bonus_fen - row.amount_fen)
        movements[row.id] = found
    return list(movements.values())
