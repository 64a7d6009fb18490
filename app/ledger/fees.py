"""Channel fees: what Alipay and WeChat Pay keep of a payment, and give back on a refund.

Both channels charge a rate on each payment, rounded half up to the fen, and return the
fee pro rata when money is refunded. The return is computed on the running total, so
however a payment is refunded in parts, refunding all of it returns exactly the fee.
"""
from __future__ import annotations

from decimal import Decimal

from flask import current_app

from app.money import apply_bps, round_fen


def fee_rate_bps(channel: str) -> int:
    return current_app.config[f"{channel.upper()}_FEE_BPS"]


def payment_fee(channel: str, amount_fen: int) -> int:
    return apply_bps(amount_fen, fee_rate_bps(channel))


def refund_fee(fee_fen: int, paid_fen: int, refunded_before_fen: int, refund_fen: int) -> int:
    """The part of ``fee_fen`` a refund of ``refund_fen`` gives back, after
    ``refunded_before_fen`` was already refunded from the same payment."""
    if paid_fen <= 0 or fee_fen == 0:
        return 0

    def returned(refunded_fen: int) -> int:
        return round_fen(Decimal(fee_fen) * refunded_fen / Decimal(paid_fen))

    return returned(refunded_before_fen + refund_fen) - returned(refunded_before_fen)
