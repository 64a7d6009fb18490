"""Fen, yuan text and splitting amounts (DESIGN.md §6)."""
from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction

import pytest

from app.money import MoneyFormatError, allocate, apply_bps, format_yuan, parse_yuan


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("94.50", 9450),
        ("94.5", 9450),
        ("94", 9400),
        ("0", 0),
        ("0.00", 0),
        ("0.01", 1),
        ("0.1", 10),
        ("1000", 100000),
        ("999999999999.99", 99999999999999),
    ],
)
def test_parse_yuan_reads_plain_yuan_into_fen(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(
    "text",
    [
        "1.234",  # more than two decimals
        "-1",  # sign
        "+1",
        "1e3",  # exponent
        " ",  # blank
        "",
        "１２",  # full-width digits
        "1２",  # a full-width digit after an ASCII one
        "1.٥",  # an Arabic-Indic digit in the decimals
        "1,000",  # thousands separator
        "1 000",
        "1.",
        ".5",
        "01",  # leading zero
        "00",
        "NaN",
        "inf",
        "¥1",
        "1000000000000",  # more than twelve digits of yuan
        None,
        100,
        Decimal("1"),
        b"1",
    ],
)
def test_parse_yuan_rejects_anything_but_a_plain_yuan_amount(text):
    with pytest.raises(MoneyFormatError):
        parse_yuan(text)


def test_money_format_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_yuan("abc")


@pytest.mark.parametrize(
    ("fen", "text"),
    [(9450, "94.50"), (0, "0.00"), (5, "0.05"), (10, "0.10"), (100, "1.00"), (123456789, "1234567.89"),
     (-150, "-1.50"), (-5, "-0.05")],
)
def test_format_yuan_writes_two_decimals(fen, text):
    assert format_yuan(fen) == text


@pytest.mark.parametrize("value", [1.5, True, "100", Decimal("1.00"), None])
def test_format_yuan_refuses_anything_but_an_int(value):
    with pytest.raises(TypeError):
        format_yuan(value)


def test_format_then_parse_round_trips_every_non_negative_amount():
    rng = random.Random(6)
    samples = [0, 1, 9, 10, 99, 100, 101] + [rng.randrange(0, 10**14) for _ in range(500)]
    for fen in samples:
        assert parse_yuan(format_yuan(fen)) == fen


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        (100, [1, 1, 1], [34, 33, 33]),  # tie: the earlier weight gets the extra fen
        (1, [1, 1, 1], [1, 0, 0]),
        (5, [3, 3, 3, 1], [2, 2, 1, 0]),  # four equal remainders: the first two win
        (7, [2, 3, 5], [1, 2, 4]),  # remainders .4 .1 .5: the largest wins
        (1001, [2999, 3001, 4000], [300, 301, 400]),  # largest remainder, not largest weight
        (100, [1, 2], [33, 67]),
        (10, [0, 1, 0], [0, 10, 0]),  # zero weights get nothing
        (10, [0, 0, 0], [4, 3, 3]),  # all zero: an even split
        (0, [5, 7], [0, 0]),
        (0, [], []),
        (9450, [1], [9450]),
        (-100, [1, 1, 1], [-34, -33, -33]),  # negative totals mirror positive ones
        (-1001, [2999, 3001, 4000], [-300, -301, -400]),
    ],
)
def test_allocate_splits_by_largest_remainder(total, weights, parts):
    assert allocate(total, weights) == parts
    assert sum(parts) == total


def test_allocate_refuses_a_non_zero_total_over_no_weights():
    with pytest.raises(ValueError):
        allocate(1, [])


def test_allocate_refuses_negative_weights():
    with pytest.raises(ValueError):
        allocate(10, [5, -1])


def test_allocate_is_deterministic():
    assert all(allocate(1000, [3, 3, 3]) == [334, 333, 333] for _ in range(20))


def test_allocate_always_sums_to_the_total_and_stays_within_a_fen_of_the_exact_share():
    rng = random.Random(20261120)
    for _ in range(3000):
        total = rng.randint(-10**7, 10**7)
        weights = [rng.choice([0, rng.randint(1, 9), rng.randint(1, 10**6)]) for _ in range(rng.randint(1, 8))]
        parts = allocate(total, weights)
        assert sum(parts) == total, (total, weights, parts)
        assert len(parts) == len(weights)
        weight_sum = sum(weights) or len(weights)
        for part, weight in zip(parts, weights):
            share = Fraction(total * (weight if sum(weights) else 1), weight_sum)
            assert abs(part - share) < 1, (total, weights, parts)
            if total >= 0:
                assert part >= 0
            else:
                assert part <= 0
        # Nothing goes to a zero weight while some weight is positive.
        if sum(weights):
            assert all(part == 0 for part, weight in zip(parts, weights) if weight == 0)


@pytest.mark.parametrize(
    ("amount", "bps", "share"),
    [
        (9450, 7000, 6615),
        (10000, 10000, 10000),
        (10000, 0, 0),
        (1, 5000, 1),  # exactly half a fen rounds up
        (1, 4999, 0),
        (3, 5000, 2),  # 1.5 -> 2
        (5, 5000, 3),  # 2.5 -> 3: half up, not half even
        (333, 3333, 111),  # 110.9889
        (-5, 5000, -3),  # half away from zero for negatives
    ],
)
def test_apply_bps_rounds_half_up_to_the_fen(amount, bps, share):
    assert apply_bps(amount, bps) == share
