"""Receipts: what we tell a payer, signed, that anyone can check (README.md, "Receipts")."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.database import append_only
from app.extensions import db
from app.timeutil import system_now

RECEIPT_KINDS = ("payment", "balance", "refund")


class Receipt(db.Model):
    """One payment's or one refund's receipt, as signed.

    ``canonical_json`` is the exact text that was hashed and signed; the other columns
    repeat what it says for lookups and lists, never the other way round. ``source_id``
    is the payment attempt's id (kind ``payment``), the order's (kind ``balance``: an
    order the prepaid balance paid alone, with no attempt) or the refund's (kind
    ``refund``): unique per kind, so a payment never gets two receipts. Rows are never updated or
    deleted (database triggers refuse both).
    """

    __tablename__ = "receipts"
    __table_args__ = (
        CheckConstraint("kind IN ('payment', 'balance', 'refund')", name="kind"),
        CheckConstraint("amount_fen > 0", name="amount_fen"),
        UniqueConstraint("kind", "source_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    receipt_no: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    source_id: Mapped[int]
    amount_fen: Mapped[int]
    canonical_json: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)  # base64
    key_id: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(default=system_now)


append_only(Receipt.__table__)
