"""Pricing a cart: coupons, tax and the breakdown invariant (DESIGN.md §6). Pure, no database."""
from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction

import pytest

from app.cart.pricing import Discount, PriceLine, Quote, quote

NO_TAX = Decimal("0")
TAX_5 = Decimal("0.05")


def half_up(value: Fraction) -> int:
    """An independent rounding oracle for non-negative amounts: half a fen rounds up."""
    return (value.numerator * 2 + value.denominator) // (value.denominator * 2)


def lines_of(*prices: int) -> list[PriceLine]:
    return [PriceLine(course_id, price) for course_id, price in enumerate(prices, start=1)]


def assert_breakdown_holds(result: Quote) -> None:
    for line in result.lines:
        assert line.amount_fen == line.list_price_fen - line.discount_fen + line.tax_fen, line
        assert 0 <= line.discount_fen <= line.list_price_fen, line
        assert line.tax_fen >= 0, line
    assert result.subtotal_fen == sum(line.list_price_fen for line in result.lines)
    assert result.discount_fen == sum(line.discount_fen for line in result.lines)
    assert result.tax_fen == sum(line.tax_fen for line in result.lines)
    assert result.total_fen == sum(line.amount_fen for line in result.lines)
    assert result.total_fen == result.subtotal_fen - result.discount_fen + result.tax_fen


def test_worked_example_100_yuan_10_percent_off_5_percent_tax_is_9450_fen():
    result = quote([PriceLine(1, 10000)], TAX_5, Discount(percent_off_bps=1000))
    assert (result.subtotal_fen, result.discount_fen, result.tax_fen, result.total_fen) == (
        10000, 1000, 450, 9450,
    )
    (line,) = result.lines
    assert (line.list_price_fen, line.discount_fen, line.tax_fen, line.amount_fen) == (
        10000, 1000, 450, 9450,
    )


def test_no_coupon_means_no_discount():
    result = quote(lines_of(10000, 4999), TAX_5)
    assert [line.discount_fen for line in result.lines] == [0, 0]
    assert [line.amount_fen for line in result.lines] == [10500, 5249]  # 5248.95 -> 5249
    assert_breakdown_holds(result)


def test_percent_line_amount_is_rounded_once_over_the_whole_formula():
    # Step by step, 1235 × 0.9 = 1111.5 -> 1112, × 1.05 = 1167.6 -> 1168; rounded once,
    # 1235 × 0.9 × 1.05 = 1167.075 -> 1167.
    result = quote([PriceLine(1, 1235)], TAX_5, Discount(percent_off_bps=1000))
    assert result.lines[0].amount_fen == 1167
    assert_breakdown_holds(result)


def test_fixed_coupon_is_allocated_by_largest_remainder_and_sums_exactly():
    result = quote(lines_of(2999, 3001, 4000), NO_TAX, Discount(amount_off_fen=1001))
    # Exact shares 300.1999, 300.4001, 400.4: the spare fen goes to the second line.
    assert [line.discount_fen for line in result.lines] == [300, 301, 400]
    assert result.discount_fen == 1001
    assert [line.amount_fen for line in result.lines] == [2699, 2700, 3600]
    assert_breakdown_holds(result)


def test_fixed_coupon_tie_goes_to_the_earlier_line():
    result = quote(lines_of(1000, 1000, 1000), NO_TAX, Discount(amount_off_fen=100))
    assert [line.discount_fen for line in result.lines] == [34, 33, 33]


def test_fixed_coupon_with_tax_taxes_the_discounted_price():
    result = quote(lines_of(10000, 5000), TAX_5, Discount(amount_off_fen=1500))
    assert [line.discount_fen for line in result.lines] == [1000, 500]
    assert [line.tax_fen for line in result.lines] == [450, 225]
    assert result.total_fen == 14175
    assert_breakdown_holds(result)


@pytest.mark.parametrize(
    ("prices", "coupon_fen"),
    [((10000,), 10001), ((10000, 20000), 50000), ((1,), 100)],
)
def test_coupon_larger_than_the_eligible_subtotal_caps_at_zero(prices, coupon_fen):
    result = quote(lines_of(*prices), TAX_5, Discount(amount_off_fen=coupon_fen))
    assert [line.discount_fen for line in result.lines] == list(prices)
    assert all(line.amount_fen == 0 and line.tax_fen == 0 for line in result.lines)
    assert result.total_fen == 0
    assert_breakdown_holds(result)


def test_oversized_scoped_coupon_caps_at_its_own_lines():
    result = quote(lines_of(10000, 20000), NO_TAX, Discount(amount_off_fen=50000, course_ids=frozenset({1})))
    assert [line.discount_fen for line in result.lines] == [10000, 0]
    assert [line.amount_fen for line in result.lines] == [0, 20000]


@pytest.mark.parametrize(
    "discount",
    [
        Discount(percent_off_bps=2000, course_ids=frozenset({2, 3})),
        Discount(amount_off_fen=1000, course_ids=frozenset({2, 3})),
    ],
    ids=["percent", "fixed"],
)
def test_course_scoped_coupon_only_touches_its_lines(discount):
    result = quote(lines_of(10000, 3000, 2000, 7000), TAX_5, discount)
    by_course = {line.course_id: line for line in result.lines}
    assert by_course[1].discount_fen == 0 and by_course[4].discount_fen == 0
    assert by_course[1].amount_fen == 10500 and by_course[4].amount_fen == 7350
    assert by_course[2].discount_fen > 0 and by_course[3].discount_fen > 0
    assert by_course[2].discount_fen + by_course[3].discount_fen == 1000
    assert_breakdown_holds(result)


def test_scoped_coupon_for_courses_not_in_the_cart_discounts_nothing():
    result = quote(lines_of(10000), TAX_5, Discount(amount_off_fen=500, course_ids=frozenset({9})))
    assert result.discount_fen == 0 and result.total_fen == 10500


@pytest.mark.parametrize(
    ("prices", "discount", "tax_rate", "total"),
    [
        ((10000,), None, NO_TAX, 10000),
        ((10000,), Discount(percent_off_bps=1000), TAX_5, 9450),
        ((10000,), Discount(percent_off_bps=10000), TAX_5, 0),
        ((1,), Discount(percent_off_bps=5000), NO_TAX, 1),  # 0.5 fen rounds up
        ((1,), Discount(percent_off_bps=5001), NO_TAX, 0),
        ((333, 333, 334), Discount(percent_off_bps=3333), Decimal("0.13"), 754),
        ((9999, 1), Discount(amount_off_fen=5000), Decimal("0.06"), 5300),
        ((19900, 29900, 9900), Discount(amount_off_fen=3000), Decimal("0.09"), 61803),
        ((5, 5, 5), Discount(amount_off_fen=1), Decimal("0.1"), 16),
        ((12345, 67890), Discount(percent_off_bps=1234, course_ids=frozenset({2})), Decimal("0.0725"), 77067),
    ],
)
def test_breakdown_table_totals_and_invariant(prices, discount, tax_rate, total):
    result = quote(lines_of(*prices), tax_rate, discount)
    assert result.total_fen == total
    assert_breakdown_holds(result)


@pytest.mark.parametrize("percent_off_bps", [1, 333, 1000, 1500, 3333, 5000, 9999])
def test_without_tax_the_line_amount_is_exactly_price_minus_discount(percent_off_bps):
    for price in [1, 3, 99, 999, 1235, 10000, 19999]:
        result = quote([PriceLine(1, price)], NO_TAX, Discount(percent_off_bps=percent_off_bps))
        line = result.lines[0]
        assert line.tax_fen == 0
        assert line.amount_fen == price - line.discount_fen
        assert line.amount_fen == half_up(Fraction(price) * (1 - Fraction(percent_off_bps, 10000)))


def test_random_sweep_keeps_the_invariant_and_matches_an_independent_formula():
    rng = random.Random(20261120)
    tax_rates = [NO_TAX, Decimal("0.03"), TAX_5, Decimal("0.06"), Decimal("0.13"), Decimal("0.0725")]
    for _ in range(1500):
        prices = [rng.choice([1, 99, rng.randint(1, 100000)]) for _ in range(rng.randint(1, 6))]
        lines = lines_of(*prices)
        tax_rate = rng.choice(tax_rates)
        scope = None
        if rng.random() < 0.3:
            scope = frozenset(rng.sample(range(1, len(prices) + 1), rng.randint(1, len(prices))))
        kind = rng.choice(["none", "percent", "fixed"])
        discount = None
        if kind == "percent":
            discount = Discount(percent_off_bps=rng.randint(1, 10000), course_ids=scope)
        elif kind == "fixed":
            discount = Discount(amount_off_fen=rng.randint(1, 150000), course_ids=scope)

        result = quote(lines, tax_rate, discount)
        assert_breakdown_holds(result)
        eligible = [discount is not None and (scope is None or line.course_id in scope) for line in lines]
        tax = Fraction(tax_rate)
        for line, priced, ok in zip(lines, result.lines, eligible):
            assert priced.course_id == line.course_id and priced.list_price_fen == line.list_price_fen
            if not ok:
                assert priced.discount_fen == 0
            if kind == "percent" and ok:
                rate = Fraction(discount.percent_off_bps, 10000)
                expected = half_up(Fraction(line.list_price_fen) * (1 - rate) * (1 + tax))
            else:
                expected = half_up(Fraction(line.list_price_fen - priced.discount_fen) * (1 + tax))
            assert priced.amount_fen == expected, (prices, tax_rate, discount, result)
        if kind == "fixed":
            eligible_subtotal = sum(p for p, ok in zip(prices, eligible) if ok)
            assert result.discount_fen == min(discount.amount_off_fen, eligible_subtotal)
