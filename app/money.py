"""Money is an integer number of fen. These helpers are the only place it meets text or
Decimal; floats never touch it."""
from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Sequence

# [0-9], not \d: \d also matches non-ASCII digits such as "２" or "٥".
_YUAN_RE = re.compile(r"^(0|[1-9][0-9]{0,11})(?:\.([0-9]{1,2}))?$")


class MoneyFormatError(ValueError):
    """Text that is not a non-negative yuan amount with at most two decimals."""


def parse_yuan(text: str) -> int:
    """Parse a yuan string such as ``"94.50"`` into fen (9450), strictly.

    Rejects signs, exponents, thousands separators, more than two decimals and blanks,
    because channel amounts and form input must mean exactly one number of fen.
    """
    match = _YUAN_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise MoneyFormatError(f"not a yuan amount: {text!r}")
    whole, cents = match.group(1), (match.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(cents)


def format_yuan(amount_fen: int) -> str:
    """Fen as a two-decimal yuan string, the way Alipay wants it: 9450 -> ``"94.50"``."""
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool):
        raise TypeError("amount_fen must be an int")
    sign = "-" if amount_fen < 0 else ""
    whole, cents = divmod(abs(amount_fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def display_yuan(amount_fen: int) -> str:
    """Fen for people: 9450 -> ``"¥94.50"``."""
    return "¥" + format_yuan(amount_fen)


def round_fen(value: Decimal) -> int:
    """Round a Decimal number of fen once, half up, to a whole fen."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def apply_bps(amount_fen: int, bps: int) -> int:
    """``amount × bps / 10000`` rounded half up: a share or rate in basis points."""
    return round_fen(Decimal(amount_fen) * bps / Decimal(10000))


def allocate(total_fen: int, weights: Sequence[int]) -> list[int]:
    """Split ``total_fen`` in proportion to ``weights`` by largest remainder.

    The parts always sum to ``total_fen`` exactly. Ties in the remainder go to the
    earlier weight, so the split is deterministic. All-zero weights split evenly.
    """
    if total_fen < 0:
        return [-part for part in allocate(-total_fen, weights)]
    if not weights:
        if total_fen:
            raise ValueError("cannot allocate a non-zero amount over no weights")
        return []
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        weights = [1] * len(weights)
        weight_sum = len(weights)
    floors = [total_fen * w // weight_sum for w in weights]
    remainders = [total_fen * w % weight_sum for w in weights]
    left = total_fen - sum(floors)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for index in by_remainder[:left]:
        floors[index] += 1
    return floors
