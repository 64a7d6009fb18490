from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.timeutil import system_now


class JournalEntry(db.Model):
    """An append-only, balanced journal entry; its postings sum to zero.

    ``source_key`` names the business event it books (``payment:<attempt id>``) and is
    unique, so the same event can never be booked twice, even by racing workers.
    """

    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    source_key: Mapped[str] = mapped_column(String(80), unique=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    memo: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(default=system_now, index=True)

    postings: Mapped[list[Posting]] = relationship(
        back_populates="entry", order_by="Posting.id"
    )


class Posting(db.Model):
    """One leg of an entry. Debits are positive, credits negative."""

    __tablename__ = "postings"
    __table_args__ = (CheckConstraint("amount_fen <> 0", name="amount_fen"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    account: Mapped[str] = mapped_column(String(80), index=True)
    amount_fen: Mapped[int]

    entry: Mapped[JournalEntry] = relationship(back_populates="postings")
