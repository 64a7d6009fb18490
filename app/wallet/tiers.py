"""Bonus tiers and the order in which a balance is spent. Pure: no database."""
from __future__ import annotations

from typing import Sequence


def bonus_for(amount_fen: int, tiers: Sequence[tuple[int, int]]) -> int:
    """The bonus of a top-up: that of the highest tier whose threshold it reaches."""
    bonus = 0
    for threshold_fen, tier_bonus_fen in sorted(tiers):
        if amount_fen >= threshold_fen:
            bonus = tier_bonus_fen
    return bonus


def spend_order(paid_fen: int, bonus_fen: int, amount_fen: int) -> tuple[int, int]:
    """How much of ``amount_fen`` the paid money and the bonus cover: paid money first,
    so bonus, which is never refunded in cash, is what is left longest. Either part may
    fall short; the caller decides what to do with the rest."""
    from_paid = min(paid_fen, amount_fen)
    return from_paid, min(bonus_fen, amount_fen - from_paid)
