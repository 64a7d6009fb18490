"""Corrections finance books to an instructor's available balance, with a reason.

A closed statement is never changed: a correction is a new entry, and so appears on the
statement of the month it is made in. Flushes; the admin view commits.
"""
from __future__ import annotations

import uuid

from app.accounts.models import User
from app.audit.services import record
from app.catalog.models import Instructor
from app.extensions import db
from app.ledger import accounts
from app.ledger.services import post_entry

ADJUSTING_STAFF = frozenset({"finance", "admin"})
MAX_ADJUSTMENT_FEN = 100_000_000


class AdjustmentError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def post_adjustment(instructor_id: int, amount_fen: int, reason: str, staff_id: int) -> int:
    """``amount_fen`` positive credits the instructor, negative debits them."""
    staff = db.session.get(User, staff_id)
    if staff is None or staff.role not in ADJUSTING_STAFF:
        raise AdjustmentError("forbidden", "Only finance or admin may adjust earnings.")
    text = " ".join((reason or "").split())[:200]
    if not text:
        raise AdjustmentError("reason_required", "Please give a reason; the instructor sees it.")
    if amount_fen == 0 or abs(amount_fen) > MAX_ADJUSTMENT_FEN:
        raise AdjustmentError("amount", "An adjustment is a non-zero amount of at most ¥1,000,000.")
    if db.session.get(Instructor, instructor_id) is None:
        raise AdjustmentError("not_found", "No such instructor.")
    entry_id = post_entry(
        "adjustment", f"adjustment:{uuid.uuid4().hex}",
        [(accounts.instructor_available(instructor_id), -amount_fen), (accounts.EARNINGS_ADJUSTMENTS, amount_fen)],
        memo=text,
    )
    record(staff_id, "earnings.adjust", "instructor", instructor_id, text, None,
           {"amount_fen": amount_fen, "entry_id": entry_id})
    return entry_id
