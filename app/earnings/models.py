"""Commission rules, who shares a course, each sold line's split, payouts and statements.

Rules and splits are never edited in place: a new rule takes effect from a future moment,
and every order line keeps the split it was sold with (``OrderLineShare``), so nothing
done later changes what an instructor earned on a past sale.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import append_only
from app.extensions import db
from app.timeutil import system_now


class CommissionRule(db.Model):
    """The instructor's share, net of tax, in basis points, from ``effective_from`` on.

    Exactly one of ``instructor_id`` (that instructor's default) and ``course_id`` (an
    override for one course) is set. The rule in force for a sale is the newest one that
    took effect before the order was placed; a course rule beats the instructor default.
    A rule not yet in effect may be withdrawn; one in effect is only ever superseded.
    """

    __tablename__ = "commission_rules"
    __table_args__ = (
        CheckConstraint("rate_bps BETWEEN 0 AND 10000", name="rate_bps"),
        CheckConstraint(
            "(instructor_id IS NULL) <> (course_id IS NULL)", name="one_scope"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instructor_id: Mapped[int | None] = mapped_column(ForeignKey("instructors.id"), index=True)
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id"), index=True)
    rate_bps: Mapped[int]
    effective_from: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(String(255), default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=system_now)
    withdrawn_at: Mapped[datetime | None]


class CourseAuthor(db.Model):
    """A co-author of a course and their agreed weight in its instructor share.

    A course without rows has one author, its ``instructor_id``. Changes apply to orders
    placed afterwards: each line copies the split into ``OrderLineShare`` when sold.
    """

    __tablename__ = "course_authors"
    __table_args__ = (
        UniqueConstraint("course_id", "instructor_id"),
        CheckConstraint("weight > 0", name="weight"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), index=True)
    instructor_id: Mapped[int] = mapped_column(ForeignKey("instructors.id"), index=True)
    weight: Mapped[int]


class OrderLineShare(db.Model):
    """One instructor's part of one order line, fixed when the order is placed.

    ``share_fen`` is that instructor's part of ``rate × (amount − tax)``, split between
    co-authors by weight with largest remainder; the parts of a line sum to its share.
    """

    __tablename__ = "order_line_shares"
    __table_args__ = (
        UniqueConstraint("order_line_id", "instructor_id"),
        CheckConstraint("share_fen >= 0", name="share_fen"),
        CheckConstraint("weight > 0", name="weight"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"), index=True)
    instructor_id: Mapped[int] = mapped_column(ForeignKey("instructors.id"), index=True)
    weight: Mapped[int]
    weight_total: Mapped[int]
    share_fen: Mapped[int]


class PayoutBatch(db.Model):
    """Finance's run of payouts for a period: one payout per instructor whose available
    balance reached ``minimum_fen`` and who has a bank account on file."""

    __tablename__ = "payout_batches"
    __table_args__ = (CheckConstraint("minimum_fen > 0", name="minimum_fen"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7))  # "2026-11"
    minimum_fen: Mapped[int]
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=system_now)
    exported_at: Mapped[datetime | None]

    payouts: Mapped[list[Payout]] = relationship(back_populates="batch", order_by="Payout.id")


class Payout(db.Model):
    """Money owed to one instructor, on its way to their bank.

    Creating it moves the amount from ``available`` to ``payout:clearing``; ``paid``
    (with the bank's reference) takes it out of clearing to the bank, ``failed`` puts it
    back to ``available``. The bank account is copied, still sealed, when the batch is made.
    """

    __tablename__ = "payouts"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_fen"),
        CheckConstraint("status IN ('pending', 'paid', 'failed')", name="status"),
        UniqueConstraint("batch_id", "instructor_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payout_batches.id"), index=True)
    instructor_id: Mapped[int] = mapped_column(ForeignKey("instructors.id"), index=True)
    amount_fen: Mapped[int]
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    account_holder: Mapped[str] = mapped_column(String(80))
    bank_name: Mapped[str] = mapped_column(String(80))
    account_key_id: Mapped[str] = mapped_column(String(16))
    account_ciphertext: Mapped[str] = mapped_column(Text)
    account_last4: Mapped[str] = mapped_column(String(4))
    bank_reference: Mapped[str | None] = mapped_column(String(64))
    settled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=system_now)

    batch: Mapped[PayoutBatch] = relationship(back_populates="payouts")


class BankAccount(db.Model):
    """Where an instructor is paid. The number is sealed with AES-256-GCM
    (`app.fieldcrypto`); only its last four digits are kept in clear, for masking."""

    __tablename__ = "instructor_bank_accounts"

    instructor_id: Mapped[int] = mapped_column(ForeignKey("instructors.id"), primary_key=True)
    account_holder: Mapped[str] = mapped_column(String(80))
    bank_name: Mapped[str] = mapped_column(String(80))
    key_id: Mapped[str] = mapped_column(String(16))
    ciphertext: Mapped[str] = mapped_column(Text)
    last4: Mapped[str] = mapped_column(String(4))
    updated_at: Mapped[datetime] = mapped_column(default=system_now)


class Statement(db.Model):
    """A closed month of one instructor's earnings. Never updated or deleted (database
    triggers refuse both): a later correction lands on the next month's statement."""

    __tablename__ = "statements"
    __table_args__ = (UniqueConstraint("instructor_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instructor_id: Mapped[int] = mapped_column(ForeignKey("instructors.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    instructor_name: Mapped[str] = mapped_column(String(80))
    opening_fen: Mapped[int]
    sales_fen: Mapped[int]
    refunds_fen: Mapped[int]
    adjustments_fen: Mapped[int]
    payouts_fen: Mapped[int]
    closing_fen: Mapped[int]
    pending_fen: Mapped[int]
    available_fen: Mapped[int]
    rule_text: Mapped[str] = mapped_column(Text)
    closed_at: Mapped[datetime]

    lines: Mapped[list[StatementLine]] = relationship(order_by="StatementLine.position")


class StatementLine(db.Model):
    """A row of a closed statement, as printed. ``entry_id`` is the journal entry it came
    from; an entry belongs to one statement of an instructor only.

    Only ``statement_id`` is a foreign key. ``instructor_id`` and ``entry_id`` are copies
    of what the statement and its `StatementEntry` rows record, and those carry the
    database's guarantees: statements.instructor_id, and statement_entries' instructor_id
    and entry_id, are foreign keys, and (instructor, entry) is unique there. The copies
    agree with them because close_statement writes a line only for an entry it takes in,
    in the same transaction, and no row of either table can change afterwards (append-only
    triggers); the database does not check that agreement itself. As foreign keys of their
    own they cost a busy month's close a lookup and a row lock per line (about 1 s of
    9.7 s at 124,000 lines) and, given that agreement, guarded nothing the entries' keys
    do not; nothing reads lines by them, so they have no index either."""

    __tablename__ = "statement_lines"
    # Lines are read in order, a batch at a time, by position (keyset pagination): this
    # index is what makes each batch one range scan, however long the statement.
    __table_args__ = (
        Index("ix_statement_lines_statement_id_position", "statement_id", "position", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id"))
    instructor_id: Mapped[int]
    entry_id: Mapped[int]
    position: Mapped[int]
    occurred_at: Mapped[datetime]  # Beijing time, as printed
    kind: Mapped[str] = mapped_column(String(12))
    order_no: Mapped[str | None] = mapped_column(String(32))
    course_title: Mapped[str | None] = mapped_column(String(120))
    amount_fen: Mapped[int | None]
    tax_fen: Mapped[int | None]
    fee_fen: Mapped[int | None]
    rate_bps: Mapped[int | None]
    weight_note: Mapped[str | None] = mapped_column(String(20))
    share_fen: Mapped[int]
    memo: Mapped[str] = mapped_column(String(255), default="")


class StatementEntry(db.Model):
    """Which journal entries a statement took in, so that each entry touching an
    instructor lands on exactly one of their statements, even one committed late."""

    __tablename__ = "statement_entries"
    __table_args__ = (UniqueConstraint("instructor_id", "entry_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id"), index=True)
    instructor_id: Mapped[int] = mapped_column(ForeignKey("instructors.id"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))


for _table in (Statement.__table__, StatementLine.__table__, StatementEntry.__table__):
    append_only(_table)
