"""What the emulated channels' daily trade bills share: the Beijing day a bill covers,
when it may be published, the fees the emulator charges under its own contract, and
the short-lived download addresses.

Both channels cut a bill at midnight Beijing time and publish it once the day is over.
A payment belongs to the day it was paid; a refund to the day it completed. Fees are
computed here, from the emulator's own rows and rate, never taken from CourseCashier:
a payment pays ``amount × rate`` rounded half up to the fen, and each refund gives
back the fee in proportion to the running total refunded from its trade, so refunding
everything gives back exactly the fee. The rate is ``GATEWAY_<CHANNEL>_FEE_BPS``; unset,
it is the rate CourseCashier expects (``<CHANNEL>_FEE_BPS``), as under a signed contract.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Sequence

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from app.money import apply_bps, round_fen
from app.timeutil import BEIJING, as_aware, from_aware, now

_TOKEN_SALT = "gateway-bill-download"


@dataclass(frozen=True)
class BillDay:
    """One Beijing calendar day as the emulator's naive-UTC columns see it."""

    bill_date: date
    start: datetime  # naive UTC, inclusive: midnight Beijing
    end: datetime  # naive UTC, exclusive: the next midnight

    @classmethod
    def of(cls, bill_date: date) -> BillDay:
        midnight = datetime.combine(bill_date, datetime.min.time(), BEIJING)
        return cls(bill_date, from_aware(midnight), from_aware(midnight + timedelta(days=1)))

    def is_over(self) -> bool:
        """Whether the bill may be published: the day has ended by the emulator's clock."""
        return now() >= self.end

    def holds(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


def fee_bps(channel: str) -> int:
    """The emulated channel's contract rate, in basis points."""
    config = current_app.config
    own = config.get(f"GATEWAY_{channel.upper()}_FEE_BPS")
    return int(own if own is not None else config[f"{channel.upper()}_FEE_BPS"])


def payment_fee(amount_fen: int, bps: int) -> int:
    return apply_bps(amount_fen, bps)


def refund_fees(total_fen: int, fee_fen: int, refunds_fen: Sequence[int]) -> list[int]:
    """The fee each of a trade's refunds gives back, refunds in the order they were
    made: the difference of the pro-rata fee of the running totals, so the parts add
    up to exactly ``fee_fen`` once ``total_fen`` is refunded."""

    def returned(refunded_fen: int) -> int:
        return round_fen(Decimal(fee_fen) * refunded_fen / Decimal(total_fen))

    shares, refunded = [], 0
    for refund_fen in refunds_fen:
        shares.append(returned(refunded + refund_fen) - returned(refunded))
        refunded += refund_fen
    return shares


def one_line(text: str) -> str:
    """Free text (a subject, a refund reason) on one line: each bill row is one line of
    the file, and the readers split lines wherever ``str.splitlines`` does."""
    return " ".join(text.splitlines())


def rate_text(bps: int) -> str:
    """60 -> ``"0.60%"``, as WeChat Pay's bill writes its rate."""
    return f"{bps // 100}.{bps % 100:02d}%"


def download_token(fields: dict[str, Any], lifetime: timedelta) -> str:
    """An opaque, signed download token for ``fields``, valid for ``lifetime``."""
    expires = int((as_aware(now()) + lifetime).timestamp())
    return _serializer().dumps({**fields, "exp": expires})


def read_download_token(token: str) -> dict[str, Any] | None:
    """The fields of a token this emulator made, or None if forged or expired."""
    try:
        fields = _serializer().loads(token)
    except BadSignature:
        return None
    if not isinstance(fields, dict) or not isinstance(fields.get("exp"), int):
        return None
    if as_aware(now()).timestamp() > fields["exp"]:
        return None
    return fields


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_TOKEN_SALT)
