"""Prices a list of courses with an optional coupon and a tax rate. Pure: no database.

The amount of a line is ``price × (1 − discount rate) × (1 + tax rate)``, rounded once,
half up, to the fen (DESIGN.md §6). A fixed-amount coupon is an order-level discount,
split over the lines it applies to by largest remainder in proportion to their price, so
the line discounts sum to the coupon exactly. The breakdown always holds
``total = subtotal − discount + tax`` on every line and on the order.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

from app.money import allocate, round_fen


@dataclass(frozen=True)
class PriceLine:
    course_id: int
    list_price_fen: int


@dataclass(frozen=True)
class Discount:
    """A coupon reduced to what pricing needs: exactly one of the two values is set."""

    percent_off_bps: int | None = None
    amount_off_fen: int | None = None
    # None: the whole cart; otherwise only these courses.
    course_ids: frozenset[int] | None = None

    def applies_to(self, course_id: int) -> bool:
        return self.course_ids is None or course_id in self.course_ids


@dataclass(frozen=True)
class PricedLine:
    course_id: int
    list_price_fen: int
    discount_fen: int
    tax_fen: int
    amount_fen: int


@dataclass(frozen=True)
class Quote:
    lines: tuple[PricedLine, ...]
    subtotal_fen: int
    discount_fen: int
    tax_fen: int
    total_fen: int


def quote(lines: Sequence[PriceLine], tax_rate: Decimal, discount: Discount | None = None) -> Quote:
    discounts = _line_discounts(lines, discount)
    priced = []
    for line, line_discount in zip(lines, discounts, strict=True):
        if discount is not None and discount.percent_off_bps is not None and line_discount:
            rate = Decimal(discount.percent_off_bps) / Decimal(10000)
            # Rounded once over the whole formula, not step by step.
            amount = round_fen(Decimal(line.list_price_fen) * (1 - rate) * (1 + tax_rate))
        else:
            amount = round_fen(Decimal(line.list_price_fen - line_discount) * (1 + tax_rate))
        tax = amount - (line.list_price_fen - line_discount)
        priced.append(
            PricedLine(line.course_id, line.list_price_fen, line_discount, tax, amount)
        )
    return Quote(
        lines=tuple(priced),
        subtotal_fen=sum(p.list_price_fen for p in priced),
        discount_fen=sum(p.discount_fen for p in priced),
        tax_fen=sum(p.tax_fen for p in priced),
        total_fen=sum(p.amount_fen for p in priced),
    )


def eligible_subtotal(lines: Sequence[PriceLine], discount: Discount) -> int:
    return sum(line.list_price_fen for line in lines if discount.applies_to(line.course_id))


def _line_discounts(lines: Sequence[PriceLine], discount: Discount | None) -> list[int]:
    if discount is None:
        return [0] * len(lines)
    eligible = [discount.applies_to(line.course_id) for line in lines]
    if discount.percent_off_bps is not None:
        rate = Decimal(discount.percent_off_bps) / Decimal(10000)
        # The discounted price is what gets rounded, so with no tax the line amount is
        # exactly price − discount.
        return [
            line.list_price_fen - round_fen(Decimal(line.list_price_fen) * (1 - rate)) if ok else 0
            for line, ok in zip(lines, eligible, strict=True)
        ]
    weights = [line.list_price_fen if ok else 0 for line, ok in zip(lines, eligible, strict=True)]
    # A coupon worth more than the eligible lines brings them to zero, never below.
    amount = min(discount.amount_off_fen or 0, sum(weights))
    if amount == 0:
        return [0] * len(lines)
    return allocate(amount, weights)
