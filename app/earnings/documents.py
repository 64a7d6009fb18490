"""A statement as its readers see it: frozen data that the CSV and PDF are drawn from.

`statements.py` builds these from stored statement rows (a closed month) or from the
journal (the month still open); the renderers know nothing about the database, so a
closed month renders from the same values every time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

ROW_KINDS = ("sale", "refund", "adjustment", "payout")


@dataclass(frozen=True)
class StatementRow:
    """One movement of the instructor's balance.

    ``share_fen`` is signed as the balance moves: a sale is positive, a refund or a payout
    negative. The other amounts describe the order line the row comes from and are None
    for rows without one (payouts, adjustments).
    """

    occurred_at: datetime  # Beijing time, naive
    kind: str  # one of ROW_KINDS
    order_no: str | None
    course_title: str | None
    amount_fen: int | None  # what the learner paid (or got back) for the line
    tax_fen: int | None
    fee_fen: int | None  # the channel fee on the line, borne by the platform
    rate_bps: int | None  # the instructor's rate the line was sold at
    weight_note: str | None  # "2/3": this author's weight of a co-authored course, else None
    share_fen: int
    memo: str


@dataclass(frozen=True)
class StatementDocument:
    instructor_name: str
    period: str  # "2026-11"
    period_start: date  # first day, Beijing time
    period_end: date  # last day, Beijing time
    is_closed: bool
    closed_at: datetime | None  # Beijing time
    opening_fen: int
    sales_fen: int
    refunds_fen: int  # negative or zero
    adjustments_fen: int
    payouts_fen: int  # negative or zero
    closing_fen: int  # opening + sales + refunds + adjustments + payouts
    pending_fen: int  # of the closing balance, still inside a refund window
    available_fen: int  # of the closing balance, payable (may be negative)
    rule_text: str  # how shares are computed, printed on the statement
    rows: tuple[StatementRow, ...]
