"""Invoice requests (电子发票): a learner's request for a paid order, and what finance
did with it (issued with a number and a file, rejected, reversed in red letter)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.timeutil import system_now


class InvoiceRequest(db.Model):
    """One request for an invoice of one order.

    ``amount_fen`` is what the invoice is for: the order's total net of refunds when
    asked, lowered by refunds that land before it is issued, fixed once issued.
    ``refunded_fen`` is the part of this request's money refunded after it was made.
    At most one open request (requested, issued, red_letter_required) per order: a
    partial unique index, so two racing requests cannot both be stored.
    The issued file is in the database (deferred: lists never load it), so any web node
    can serve it; its name is made from the invoice number, never taken from the upload.
    """

    __tablename__ = "invoice_requests"
    __table_args__ = (
        CheckConstraint(
            "status IN ('requested', 'issued', 'rejected', 'cancelled', 'red_letter_required', 'reversed')",
            name="status",
        ),
        CheckConstraint("title_type IN ('personal', 'company')", name="title_type"),
        CheckConstraint(
            "(title_type = 'company' AND tax_id IS NOT NULL) OR (title_type = 'personal' AND tax_id IS NULL)",
            name="tax_id",
        ),
        CheckConstraint("amount_fen > 0 OR (status = 'cancelled' AND amount_fen = 0)", name="amount_fen"),
        CheckConstraint("refunded_fen >= 0", name="refunded_fen"),
        CheckConstraint("file_type IS NULL OR file_type IN ('pdf', 'ofd')", name="file_type"),
        CheckConstraint("file_size IS NULL OR file_size > 0", name="file_size"),
        CheckConstraint(
            "status NOT IN ('issued', 'red_letter_required', 'reversed')"
            " OR (invoice_number IS NOT NULL AND file_type IS NOT NULL)",
            name="issued_has_number_and_file",
        ),
        Index(
            "uq_invoice_requests_open_order", "order_id", unique=True,
            sqlite_where=text("status IN ('requested', 'issued', 'red_letter_required')"),
            postgresql_where=text("status IN ('requested', 'issued', 'red_letter_required')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    status: Mapped[str] = mapped_column(String(24), default="requested", index=True)
    title_type: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(100))
    tax_id: Mapped[str | None] = mapped_column(String(18))
    email: Mapped[str] = mapped_column(String(254))
    amount_fen: Mapped[int]
    refunded_fen: Mapped[int] = mapped_column(default=0)
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(default=system_now, index=True)
    # Finance's decision: the issued invoice, or why not.
    invoice_number: Mapped[str | None] = mapped_column(String(20), unique=True)
    file_content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    file_type: Mapped[str | None] = mapped_column(String(3))
    file_size: Mapped[int | None]
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    issued_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    issued_at: Mapped[datetime | None]
    rejected_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    rejected_at: Mapped[datetime | None]
    reject_reason: Mapped[str | None] = mapped_column(String(255))
    # Set when the order was refunded in full before the invoice was issued.
    cancelled_at: Mapped[datetime | None]
    # A refund after issuing: the invoice must be reversed by a red-letter invoice.
    red_letter_flagged_at: Mapped[datetime | None]
    red_letter_number: Mapped[str | None] = mapped_column(String(20), unique=True)
    reversed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reversed_at: Mapped[datetime | None]
