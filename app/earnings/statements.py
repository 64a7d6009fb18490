"""Monthly statements: closed on the first day of the next month, immutable once closed.

A statement takes in every journal entry touching the instructor, dated before the end
of its month, that no earlier statement took in (`StatementEntry`). An entry committed
late, after its month closed, therefore lands on the next statement rather than being
lost or rewriting a closed one. Services flush; the job commits.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Iterator

from sqlalchemy import ColumnElement, exists, func, insert, select

from app import followups
from app.catalog.models import Instructor
from app.earnings.activity import entries_touching
from app.earnings.documents import StatementDocument, StatementRow
from app.earnings.models import Statement, StatementEntry, StatementLine
from app.earnings.month_rows import ROW_KIND, ROW_SHARE, Movements, month_entries, month_entry_values, movements
from app.earnings.periods import (
    first_day, last_day, next_period, period_end, period_of, periods_between, previous_period,
)
from app.earnings.rules import RULE_TEXT
from app.extensions import db
from app.ledger.models import JournalEntry
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


def _totals(moved: Movements) -> Totals:
    kinds = moved.by_kind
    return Totals(kinds["sale"], kinds["refund"], kinds["adjustment"], kinds["payout"])


def _unstated(instructor_id: int, before: datetime | None) -> list[ColumnElement[bool]]:
    """Criteria on `JournalEntry`: entries no statement of the instructor took in yet,
    created before ``before`` (all of them with None). Which entries touch the
    instructor is left to the query: a join on their postings."""
    taken = exists().where(
        StatementEntry.instructor_id == instructor_id, StatementEntry.entry_id == JournalEntry.id
    )
    criteria = [~taken]
    if before is not None:
        criteria.append(JournalEntry.created_at < before)
    return criteria


def last_statement(instructor_id: int) -> Statement | None:
    return db.session.scalar(
        select(Statement).where(Statement.instructor_id == instructor_id).order_by(Statement.period.desc()).limit(1)
    )


@dataclass(frozen=True)
class Month:
    """What a statement's entries add up to, and where they leave the balance."""

    totals: Totals
    opening_fen: int
    pending_fen: int
    available_fen: int

    @property
    def closing_fen(self) -> int:
        return self.opening_fen + self.totals.net_fen


def _month(instructor_id: int, entries: list[ColumnElement[bool]]) -> Month:
    """The figures of a month from SQL aggregates: its rows are read (streamed) apart."""
    previous = last_statement(instructor_id)
    moved = movements(instructor_id, entries)
    return Month(
        totals=_totals(moved),
        opening_fen=previous.closing_fen if previous else 0,
        pending_fen=(previous.pending_fen if previous else 0) + moved.pending_fen,
        available_fen=(previous.available_fen if previous else 0) + moved.available_fen,
    )


# Lines (and entries) written at a time: written as they are computed, never all held.
WRITE_BATCH = 5000
_LINE_COLUMNS = ("statement_id", "instructor_id", "entry_id", "position", "occurred_at", "kind", "order_no",
                 "course_title", "amount_fen", "tax_fen", "fee_fen", "rate_bps", "weight_note", "share_fen", "memo")
_ENTRY_COLUMNS = ("statement_id", "instructor_id", "entry_id")


def _append(model: type[StatementLine] | type[StatementEntry], columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Append rows (tuples in ``columns`` order) to a statement table, in the session's
    transaction: on PostgreSQL by COPY, several times faster than an INSERT of many rows
    for a busy month's hundreds of thousands; elsewhere by one executemany INSERT."""
    if not rows:
        return
    connection = db.session.connection()
    table = model.__table__
    if connection.dialect.name == "postgresql":
        with connection.connection.driver_connection.cursor() as cursor:
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    else:
        connection.execute(insert(table), [dict(zip(columns, row)) for row in rows])


def close_statement(instructor_id: int, period: str) -> Statement:
    """Close one month for one instructor. The caller closes months in order.

    Built for a busy month (a hundred thousand lines): the totals come from SQL
    aggregates, then one streamed read (`month_entry_values`) gives the entries with
    their rows as plain tuples, written in batches as they come, so neither time nor
    memory goes per object. (At 124,000 lines of a million orders it takes about 7 s,
    nearly half of it PostgreSQL checking statement_entries' foreign keys.) Two checks
    hold it to the ledger: the lines must add up, kind by kind, to the totals, and the
    postings of the entries taken in must move the balance from the last statement's to
    this one's. An entry of the month committed between the two reads (a payment of its
    last second, racing the close) fails them: the close is rolled back and retried
    rather than print figures that disagree.
    """
    instructor = db.session.get(Instructor, instructor_id)
    previous = last_statement(instructor_id)
    if previous is not None and previous.period >= period:
        raise ValueError(f"{period} is not after the last closed statement {previous.period}")
    unstated = _unstated(instructor_id, before=period_end(period))
    month = _month(instructor_id, unstated)
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
    printed = dict.fromkeys(("sale", "refund", "adjustment", "payout"), 0)
    pending, available = (previous.pending_fen, previous.available_fen) if previous else (0, 0)
    entries: list[tuple] = []
    lines: list[tuple] = []
    position = 0
    statement_id = statement.id
    for entry_id, pending_fen, available_fen, rows in month_entry_values(instructor_id, unstated):
        entries.append((statement_id, instructor_id, entry_id))
        pending += pending_fen
        available += available_fen
        for row in rows:
            position += 1
            printed[row[ROW_KIND]] += row[ROW_SHARE]
            # _LINE_COLUMNS: the line's keys, then the row's fields in StatementRow's order.
            lines.append((statement_id, instructor_id, entry_id, position, *row))
        if len(lines) >= WRITE_BATCH:
            _append(StatementLine, _LINE_COLUMNS, lines)
            lines = []
        if len(entries) >= WRITE_BATCH:
            _append(StatementEntry, _ENTRY_COLUMNS, entries)
            entries = []
    _append(StatementLine, _LINE_COLUMNS, lines)
    _append(StatementEntry, _ENTRY_COLUMNS, entries)
    db.session.expire(statement, ["lines"])
    totals = month.totals
    if printed != {"sale": totals.sales_fen, "refund": totals.refunds_fen,
                   "adjustment": totals.adjustments_fen, "payout": totals.payouts_fen}:
        raise StatementMismatch(f"statement {period} of instructor {instructor_id}: lines disagree with totals")
    # The ledger's own figure over the entries taken in must agree, to the fen.
    if (pending, available) != (month.pending_fen, month.available_fen) or pending + available != month.closing_fen:
        raise StatementMismatch(f"statement {period} of instructor {instructor_id} disagrees with the ledger")
    followups.statement_ready(statement.id)
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


# Lines per read of a closed statement: about 300 KB of rows, one index range scan.
LINE_READ_BATCH = 2000


def statement_head(statement: Statement) -> StatementDocument:
    """A closed statement's figures as it was closed, without its lines (``rows`` is
    empty): for a reader that takes the lines from `stored_line_batches`."""
    return StatementDocument(
        instructor_name=statement.instructor_name, period=statement.period,
        period_start=first_day(statement.period), period_end=last_day(statement.period),
        is_closed=True, closed_at=beijing(statement.closed_at).replace(tzinfo=None),
        opening_fen=statement.opening_fen, sales_fen=statement.sales_fen,
        refunds_fen=statement.refunds_fen, adjustments_fen=statement.adjustments_fen,
        payouts_fen=statement.payouts_fen, closing_fen=statement.closing_fen,
        pending_fen=statement.pending_fen, available_fen=statement.available_fen,
        rule_text=statement.rule_text, rows=(),
    )


def _last_position(statement_id: int) -> int:
    """The position of a closed statement's last line, which is its number of lines
    (close_statement numbers them 1, 2, 3 …): one probe of the unique index, where a
    count would read every line."""
    line = StatementLine.__table__.c
    return db.session.scalar(select(func.max(line.position)).where(line.statement_id == statement_id)) or 0


def _stored_lines(statement_id: int, first: int, last: int) -> list[StatementRow]:
    """A closed statement's lines at positions ``first`` to ``last``, in order: one range
    scan of the unique index (statement, position), however deep into the statement."""
    line = StatementLine.__table__.c
    # The row's fields by name, in its own order: the rows are built positionally, fast.
    columns = [line[field.name] for field in fields(StatementRow)]
    batch = db.session.execute(
        select(*columns)
        .where(line.statement_id == statement_id, line.position.between(first, last))
        .order_by(line.position)
    ).all()
    return [StatementRow(*values) for values in batch]


def stored_line_batches(statement_id: int, batch_size: int = LINE_READ_BATCH) -> Iterator[list[StatementRow]]:
    """A closed statement's lines in order, ``batch_size`` at a time.

    Keyset pagination on (statement, position), the unique index, by ranges of position
    (close_statement numbers the lines 1, 2, 3 …): each batch is one range scan of at
    most ``batch_size`` lines however deep into the statement, whatever the planner's
    statistics say (a statement is often read minutes after it was written, before they
    count its lines). Nothing, no cursor, stays open between batches, so the caller may
    end the transaction between them, as a streamed download does; a closed statement
    never changes, so the batches make one statement whichever transactions read them."""
    last = _last_position(statement_id)
    for low in range(1, last + 1, batch_size):
        yield _stored_lines(statement_id, low, min(low + batch_size - 1, last))


def line_count(statement_id: int) -> int:
    return db.session.scalar(
        select(func.count()).select_from(StatementLine).where(StatementLine.statement_id == statement_id)
    ) or 0


@dataclass(frozen=True)
class LinePage:
    """One page of a statement as the instructor's page shows it: the header and summary
    of the whole statement, and ``document.rows`` holding this page's lines only (a busy
    month prints a hundred thousand; the CSV has them all)."""

    document: StatementDocument
    number: int  # from 1
    size: int  # lines a full page holds
    line_count: int  # of the whole statement

    @property
    def page_count(self) -> int:
        return max(1, -(-self.line_count // self.size))  # an empty statement has one, empty, page

    @property
    def first_line(self) -> int:
        return (self.number - 1) * self.size + 1

    @property
    def last_line(self) -> int:
        return min(self.number * self.size, self.line_count)


def stored_page(statement: Statement, number: int, size: int) -> LinePage | None:
    """Page ``number`` (from 1) of a closed statement, ``size`` lines a page; None past
    its last page. Keyset on position, as `stored_line_batches`: page 200 costs what page
    1 does."""
    page = LinePage(statement_head(statement), number, size, _last_position(statement.id))
    if number > page.page_count:
        return None
    rows = _stored_lines(statement.id, page.first_line, page.last_line) if page.line_count else []
    return replace(page, document=replace(page.document, rows=tuple(rows)))


def document_page(document: StatementDocument, number: int, size: int) -> LinePage | None:
    """The same page of a document held whole (the open month, computed live)."""
    page = LinePage(document, number, size, len(document.rows))
    if number > page.page_count:
        return None
    return replace(page, document=replace(document, rows=document.rows[page.first_line - 1:page.last_line]))


def stored_document(statement: Statement) -> StatementDocument:
    """A closed statement exactly as it was closed: it renders the same bytes forever.
    Every line in memory: for a PDF; the CSV streams them (statement_downloads), the page
    shows them a page at a time (`stored_page`)."""
    head = statement_head(statement)
    rows = tuple(row for batch in stored_line_batches(statement.id) for row in batch)
    return replace(head, rows=rows)


def open_document(instructor_id: int) -> StatementDocument:
    """The month still open: everything no statement has taken in yet, as of now."""
    instructor = db.session.get(Instructor, instructor_id)
    unstated = _unstated(instructor_id, before=None)
    month = _month(instructor_id, unstated)
    rows = tuple(row for entry in month_entries(instructor_id, unstated) for row in entry.rows)
    period = period_of(now())
    return StatementDocument(
        instructor_name=instructor.name, period=period, period_start=first_day(period),
        period_end=last_day(period), is_closed=False, closed_at=None,
        opening_fen=month.opening_fen, sales_fen=month.totals.sales_fen,
        refunds_fen=month.totals.refunds_fen, adjustments_fen=month.totals.adjustments_fen,
        payouts_fen=month.totals.payouts_fen, closing_fen=month.closing_fen,
        pending_fen=month.pending_fen, available_fen=month.available_fen,
        rule_text=RULE_TEXT, rows=rows,
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
