"""Corrections finance books to an instructor's available balance, with a reason.

A closed statement is never changed: a correction is a new entry, and so appears on the
statement of the month it is made in. Flushes; the admin view commits.
"""
from __future__ import annotations

import re

from sqlalchemy import select

from app.accounts.models import User
from app.audit.services import record
from app.catalog.models import Instructor
from app.errors import ServiceError
from app.extensions import db
from app.ledger import accounts
from app.ledger.models import JournalEntry
from app.ledger.services import post_entry

ADJUSTING_STAFF = frozenset({"finance", "admin"})
MAX_ADJUSTMENT_FEN = 100_000_000
# The form's one-time key (uuid4 hex): a resubmitted form books nothing twice.
REQUEST_KEY_RE = re.compile(r"^[0-9a-f]{32}$")


class AdjustmentError(ServiceError):
    """An adjustment that cannot be booked."""


def post_adjustment(instructor_id: int, amount_fen: int, reason: str, staff_id: int, request_key: str) -> int:
    """``amount_fen`` positive credits the instructor, negative debits them.

    ``request_key`` comes with the form that asked for it: the same key twice (a double
    click, a resubmitted page) is refused, and the journal's unique source key stops
    even two racing requests.
    """
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
    if not REQUEST_KEY_RE.fullmatch(request_key or ""):
        raise AdjustmentError("request_key", "The form expired; please open it again.")
    source_key = f"adjustment:{request_key}"
    if db.session.scalar(select(JournalEntry.id).where(JournalEntry.source_key == source_key)) is not None:
        raise AdjustmentError("duplicate", "This adjustment was already booked: the form was sent twice.")
    entry_id = post_entry(
        "adjustment", source_key,
        [(accounts.instructor_available(instructor_id), -amount_fen), (accounts.EARNINGS_ADJUSTMENTS, amount_fen)],
        memo=text,
    )
    record(staff_id, "earnings.adjust", "instructor", instructor_id, text, None,
           {"amount_fen": amount_fen, "entry_id": entry_id})
    return entry_id
