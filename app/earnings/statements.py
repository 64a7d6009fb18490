"""Monthly statements: closed on the first day of the next month, immutable once closed.

A statement takes in every journal entry touching the instructor, dated before the end
of its month, that no earlier statement took in (`StatementEntry`). An entry committed
late, after its month closed, therefore lands on the next statement rather than being
lost or rewriting a closed one. Services flush; the job commits.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select

from app.catalog.models import Instructor
from app.earnings.activity import balance_change, entries_touching, rows_for
from app.earnings.documents import StatementDocument, StatementRow
from app.earnings.models import Statement, StatementEntry, StatementLine
from app.earnings.periods import (
    first_day, last_day, next_period, period_end, period_of, periods_between, previous_period,
)
from app.earnings.rules import RULE_TEXT
from app.extensions import db
from app.ledger import accounts
from app.ledger.models import JournalEntry, Posting
from app.timeutil import beijing, now


class StatementMismatch(RuntimeError):
    """A statement that would not agree with the ledger: a bug, so nothing is closed."""


@dataclass(frozen=True)
class Totals:
    sales_fen: int
    refunds_fen: int
    adjustments_fen: int
    payouts_fen: int

    @property
    def net_fen(self) -> int:
        return self.sales_fen + self.refunds_fen + self.adjustments_fen + self.payouts_fen


def _totals(rows: list[StatementRow]) -> Totals:
    def of(kind: str) -> int:
        return sum(row.share_fen for row in rows if row.kind == kind)

    return Totals(of("sale"), of("refund"), of("adjustment"), of("payout"))


def _unstated_entries(instructor_id: int, before: datetime | None) -> list[JournalEntry]:
    taken = exists().where(
        StatementEntry.instructor_id == instructor_id, StatementEntry.entry_id == JournalEntry.id
    )
    query = select(JournalEntry).where(JournalEntry.id.in_(entries_touching(instructor_id)), ~taken)
    if before is not None:
        query = query.where(JournalEntry.created_at < before)
    return list(db.session.scalars(query.order_by(JournalEntry.created_at, JournalEntry.id)))


def last_statement(instructor_id: int) -> Statement | None:
    return db.session.scalar(
        select(Statement).where(Statement.instructor_id == instructor_id).order_by(Statement.period.desc()).limit(1)
    )


def _stated_balance(instructor_id: int) -> tuple[int, int]:
    """What the instructor is owed, (pending, available), over the entries their
    statements took in: the ledger's own figure, to check a statement against."""
    stated = select(StatementEntry.entry_id).where(StatementEntry.instructor_id == instructor_id)
    pending, available = accounts.instructor_accounts(instructor_id)
    sums = dict(
        db.session.execute(
            select(Posting.account, func.sum(Posting.amount_fen))
            .where(Posting.entry_id.in_(stated), Posting.account.in_((pending, available)))
            .group_by(Posting.account)
        ).all()
    )
    return -(sums.get(pending) or 0), -(sums.get(available) or 0)


@dataclass(frozen=True)
class Month:
    """The entries a statement takes in, their rows, and where they leave the balance."""

    rows_by_entry: list[tuple[int, list[StatementRow]]]
    totals: Totals
    opening_fen: int
    pending_fen: int
    available_fen: int

    @property
    def rows(self) -> list[StatementRow]:
        return [row for _, rows in self.rows_by_entry for row in rows]

    @property
    def closing_fen(self) -> int:
        return self.opening_fen + self.totals.net_fen


def _month(instructor_id: int, before: datetime | None) -> Month:
    previous = last_statement(instructor_id)
    entries = _unstated_entries(instructor_id, before)
    rows_by_entry = [(entry.id, rows_for([entry], instructor_id)) for entry in entries]
    pending = previous.pending_fen if previous else 0
    available = previous.available_fen if previous else 0
    for entry in entries:
        moved_pending, moved_available = balance_change(entry, instructor_id)
        pending += moved_pending
        available += moved_available
    return Month(
        rows_by_entry=rows_by_entry,
        totals=_totals([row for _, rows in rows_by_entry for row in rows]),
        opening_fen=previous.closing_fen if previous else 0,
        pending_fen=pending,
        available_fen=available,
    )


def close_statement(instructor_id: int, period: str) -> Statement:
    """Close one month for one instructor. The caller closes months in order."""
    instructor = db.session.get(Instructor, instructor_id)
    previous = last_statement(instructor_id)
    if previous is not None and previous.period >= period:
        raise ValueError(f"{period} is not after the last closed statement {previous.period}")
    month = _month(instructor_id, before=period_end(period))
    statement = Statement(
        instructor_id=instructor_id, period=period, instructor_name=instructor.name,
        opening_fen=month.opening_fen, sales_fen=month.totals.sales_fen,
        refunds_fen=month.totals.refunds_fen, adjustments_fen=month.totals.adjustments_fen,
        payouts_fen=month.totals.payouts_fen, closing_fen=month.closing_fen,
        pending_fen=month.pending_fen, available_fen=month.available_fen,
        rule_text=RULE_TEXT, closed_at=now(),
    )
    db.session.add(statement)
    db.session.flush()
    position = 0
    for entry_id, rows in month.rows_by_entry:
        db.session.add(StatementEntry(statement_id=statement.id, instructor_id=instructor_id, entry_id=entry_id))
        for row in rows:
            position += 1
            db.session.add(StatementLine(
                statement_id=statement.id, instructor_id=instructor_id, entry_id=entry_id,
                position=position, occurred_at=row.occurred_at, kind=row.kind,
                order_no=row.order_no, course_title=row.course_title, amount_fen=row.amount_fen,
                tax_fen=row.tax_fen, fee_fen=row.fee_fen, rate_bps=row.rate_bps,
                weight_note=row.weight_note, share_fen=row.share_fen, memo=row.memo,
            ))
    db.session.flush()
    # The ledger's own figure over the same entries must agree, to the fen.
    stated = _stated_balance(instructor_id)
    if stated != (month.pending_fen, month.available_fen) or sum(stated) != month.closing_fen:
        raise StatementMismatch(f"statement {period} of instructor {instructor_id} disagrees with the ledger")
    return statement


def first_activity_period(instructor_id: int) -> str | None:
    first = db.session.scalar(
        select(func.min(JournalEntry.created_at)).where(JournalEntry.id.in_(entries_touching(instructor_id)))
    )
    return period_of(first) if first is not None else None


def due_periods(instructor_id: int) -> list[str]:
    """Months that have ended and still need this instructor's statement, oldest first."""
    open_period = period_of(now())
    previous = last_statement(instructor_id)
    start = next_period(previous.period) if previous else first_activity_period(instructor_id)
    if start is None or start >= open_period:
        return []
    return periods_between(start, previous_period(open_period))


def instructors_due() -> list[int]:
    """Instructors whose last month has no statement yet although they had activity."""
    open_period = period_of(now())
    ids = []
    for instructor_id in db.session.scalars(select(Instructor.id).order_by(Instructor.id)):
        previous = last_statement(instructor_id)
        if previous is not None and next_period(previous.period) >= open_period:
            continue
        if due_periods(instructor_id):
            ids.append(instructor_id)
    return ids


def stored_document(statement: Statement) -> StatementDocument:
    """A closed statement exactly as it was closed: it renders the same bytes forever."""
    rows = tuple(
        StatementRow(
            occurred_at=line.occurred_at, kind=line.kind, order_no=line.order_no,
            course_title=line.course_title, amount_fen=line.amount_fen, tax_fen=line.tax_fen,
            fee_fen=line.fee_fen, rate_bps=line.rate_bps, weight_note=line.weight_note,
            share_fen=line.share_fen, memo=line.memo,
        )
        for line in statement.lines
    )
    return StatementDocument(
        instructor_name=statement.instructor_name, period=statement.period,
        period_start=first_day(statement.period), period_end=last_day(statement.period),
        is_closed=True, closed_at=beijing(statement.closed_at).replace(tzinfo=None),
        opening_fen=statement.opening_fen, sales_fen=statement.sales_fen,
        refunds_fen=statement.refunds_fen, adjustments_fen=statement.adjustments_fen,
        payouts_fen=statement.payouts_fen, closing_fen=statement.closing_fen,
        pending_fen=statement.pending_fen, available_fen=statement.available_fen,
        rule_text=statement.rule_text, rows=rows,
    )


def open_document(instructor_id: int) -> StatementDocument:
    """The month still open: everything no statement has taken in yet, as of now."""
    instructor = db.session.get(Instructor, instructor_id)
    month = _month(instructor_id, before=None)
    period = period_of(now())
    return StatementDocument(
        instructor_name=instructor.name, period=period, period_start=first_day(period),
        period_end=last_day(period), is_closed=False, closed_at=None,
        opening_fen=month.opening_fen, sales_fen=month.totals.sales_fen,
        refunds_fen=month.totals.refunds_fen, adjustments_fen=month.totals.adjustments_fen,
        payouts_fen=month.totals.payouts_fen, closing_fen=month.closing_fen,
        pending_fen=month.pending_fen, available_fen=month.available_fen,
        rule_text=RULE_TEXT, rows=tuple(month.rows),
    )


def find_statement(instructor_id: int, period: str) -> Statement | None:
    return db.session.scalar(
        select(Statement).where(Statement.instructor_id == instructor_id, Statement.period == period)
    )


def statements_of(instructor_id: int) -> list[Statement]:
    return list(
        db.session.scalars(
            select(Statement).where(Statement.instructor_id == instructor_id).order_by(Statement.period.desc())
        )
    )
