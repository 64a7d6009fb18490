"""What each journal entry means to one instructor, as statement rows.

Every entry that touches an instructor's accounts becomes rows whose shares sum to the
change of that instructor's balance (pending + available): a sale gives one row per line
they authored, a refund one per refunded line, a payout one row. A release moves money
from pending to available without changing the balance, so it prints no row.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable, Sequence

from sqlalchemy import Select, select

from app.checkout.models import Order, OrderLine
from app.earnings.bank_accounts import masked_number
from app.earnings.documents import StatementRow
from app.earnings.models import Payout
from app.extensions import db
from app.ledger import accounts
from app.ledger.models import JournalEntry, Posting
from app.membership.statement_rows import pool_rows
from app.money import allocate
from app.payments.models import PaymentAttempt, Refund
from app.timeutil import beijing


class ActivityMismatch(RuntimeError):
    """Rows that do not add up to the ledger: a bug, never shown as a statement."""


def balance_change(entry: JournalEntry, instructor_id: int) -> tuple[int, int]:
    """How an entry moved what is owed to the instructor: (pending, available), positive
    when the instructor gains (instructor accounts are credits, so the sign flips)."""
    pending, available = accounts.instructor_accounts(instructor_id)
    moved = {pending: 0, available: 0}
    for posting in entry.postings:
        if posting.account in moved:
            moved[posting.account] -= posting.amount_fen
    return moved[pending], moved[available]


def entries_touching(instructor_id: int) -> Select:
    """Ids of the journal entries that post to the instructor's accounts."""
    return select(Posting.entry_id).where(Posting.account.in_(accounts.instructor_accounts(instructor_id)))


def rows_for(entries: Sequence[JournalEntry], instructor_id: int) -> list[StatementRow]:
    rows: list[StatementRow] = []
    for entry in entries:
        entry_rows = list(_rows_for_entry(entry, instructor_id))
        pending, available = balance_change(entry, instructor_id)
        if sum(row.share_fen for row in entry_rows) != pending + available:
            raise ActivityMismatch(f"entry {entry.id}: rows do not add up for instructor {instructor_id}")
        rows.extend(entry_rows)
    return rows


def _source_id(entry: JournalEntry) -> int:
    return int(entry.source_key.rsplit(":", 1)[1])


def _rows_for_entry(entry: JournalEntry, instructor_id: int) -> Iterable[StatementRow]:
    occurred_at = beijing(entry.created_at).replace(tzinfo=None)
    if entry.kind == "payment":
        attempt = db.session.get(PaymentAttempt, _source_id(entry))
        order = db.session.get(Order, entry.order_id)
        yield from _line_rows(occurred_at, "sale", order, order.lines, attempt.fee_fen or 0, instructor_id, 1)
    elif entry.kind == "wallet_payment":  # paid from the prepaid balance: no channel, no fee
        order = db.session.get(Order, entry.order_id)
        yield from _line_rows(occurred_at, "sale", order, order.lines, 0, instructor_id, 1)
    elif entry.kind == "refund":
        refund = db.session.get(Refund, _source_id(entry))
        order = db.session.get(Order, entry.order_id)
        refunded = {line.order_line_id for line in refund.lines}
        lines = [line for line in order.lines if line.id in refunded]
        yield from _line_rows(occurred_at, "refund", order, lines, refund.fee_fen or 0, instructor_id, -1)
    elif entry.kind == "release":
        return
    elif entry.kind == "membership_pool":  # a month's membership pool shared out (app/membership)
        yield from pool_rows(entry.id, instructor_id, occurred_at)
    elif entry.kind in ("payout", "payout_failed"):
        payout = db.session.get(Payout, _source_id(entry))
        pending, available = balance_change(entry, instructor_id)
        memo = (
            f"payout #{payout.id} to account {masked_number(payout.account_last4)}"
            if entry.kind == "payout"
            else f"payout #{payout.id} returned by the bank"
        )
        yield _plain_row(occurred_at, "payout", pending + available, memo)
    else:
        pending, available = balance_change(entry, instructor_id)
        yield _plain_row(occurred_at, "adjustment", pending + available, entry.memo)


def _plain_row(occurred_at: datetime, kind: str, share_fen: int, memo: str) -> StatementRow:
    return StatementRow(
        occurred_at=occurred_at, kind=kind, order_no=None, course_title=None, amount_fen=None,
        tax_fen=None, fee_fen=None, rate_bps=None, weight_note=None, share_fen=share_fen, memo=memo,
    )


def _line_rows(
    occurred_at: datetime, kind: str, order: Order, lines: Sequence[OrderLine], fee_fen: int,
    instructor_id: int, sign: int,
) -> Iterable[StatementRow]:
    """One row per line this instructor authored; the fee is spread over the lines by
    amount, the way it was charged, so the rows show where it went."""
    fees = allocate(fee_fen, [line.amount_fen for line in lines]) if lines else []
    for line, line_fee in zip(lines, fees):
        for share in line.shares:
            if share.instructor_id != instructor_id:
                continue
            yield StatementRow(
                occurred_at=occurred_at,
                kind=kind,
                order_no=order.order_no,
                course_title=line.title,
                amount_fen=sign * line.amount_fen,
                tax_fen=sign * line.tax_fen,
                fee_fen=sign * line_fee,
                rate_bps=line.commission_bps,
                weight_note=(
                    f"{share.weight}/{share.weight_total}" if share.weight_total != share.weight else None
                ),
                share_fen=sign * share.share_fen,
                memo="",
            )


def recent_entries(instructor_id: int, limit: int) -> list[JournalEntry]:
    return list(
        db.session.scalars(
            select(JournalEntry)
            .where(JournalEntry.id.in_(entries_touching(instructor_id)))
            .order_by(JournalEntry.created_at.desc(), JournalEntry.id.desc())
            .limit(limit)
        )
    )
