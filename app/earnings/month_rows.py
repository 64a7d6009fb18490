"""A month's statement rows in bulk: what `activity.rows_for` gives entry by entry, for a
hundred thousand entries at a time.

`rows_for` loads each entry's attempt, order, lines and shares as objects, several
queries per entry: fine for the few rows a page shows, minutes for a busy instructor's
month. Here one streamed query gives the entries in the statement's order with their
fees, order lines and this instructor's shares, as plain tuples. The rows are the same,
field for field (tests/test_statement_streaming.py holds the two equal); the few entries
that are neither a sale, a refund nor a release (payouts, adjustments) still go through
`rows_for`.
"""
from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Iterator, NamedTuple, Sequence

from sqlalchemy import (
    ColumnElement, Integer, Row, Select, String, and_, case, cast, func, literal, null, select, union_all,
)

from app.checkout.models import Order, OrderLine
from app.earnings.activity import ActivityMismatch, rows_for
from app.earnings.documents import ROW_KINDS, StatementRow
from app.earnings.models import OrderLineShare
from app.extensions import db
from app.ledger import accounts
from app.ledger.models import JournalEntry, Posting
from app.money import allocate
from app.payments.models import PaymentAttempt, Refund, RefundLine
from app.timeutil import beijing

# Rows fetched at a time from the streamed query (an entry with one of its lines each).
FETCH_BATCH = 2000


# A sale paid through a channel, and one paid from the prepaid balance alone (app/wallet),
# which has no attempt and no channel fee.
SALE_KINDS = ("payment", "wallet_payment")


def row_kind(entry_kind: str) -> str | None:
    """The kind of row a journal entry prints, as `activity.rows_for` decides it; None for
    a release, which moves money from pending to available and prints nothing."""
    if entry_kind in SALE_KINDS + ("membership_pool",):  # a membership month's pool is earned by sales too
        return "sale"
    if entry_kind == "refund":
        return "refund"
    if entry_kind == "release":
        return None
    if entry_kind in ("payout", "payout_failed"):
        return "payout"
    return "adjustment"


@dataclass(frozen=True)
class Movements:
    """How a set of entries moved what the instructor is owed, by SQL aggregates."""

    by_kind: dict[str, int]  # row kind -> sum of its rows' shares
    pending_fen: int
    available_fen: int


def movements(instructor_id: int, entries: Sequence[ColumnElement[bool]]) -> Movements:
    """Sums over the instructor's postings in the entries matching ``entries`` (criteria
    on `JournalEntry`), without loading a row."""
    pending, available = accounts.instructor_accounts(instructor_id)
    sums = db.session.execute(
        select(JournalEntry.kind, Posting.account, func.sum(Posting.amount_fen))
        .join(Posting, Posting.entry_id == JournalEntry.id)
        .where(*entries, Posting.account.in_((pending, available)))
        .group_by(JournalEntry.kind, Posting.account)
    )
    by_kind = dict.fromkeys(ROW_KINDS, 0)
    owed = {pending: 0, available: 0}
    for entry_kind, account, amount_fen in sums:
        # Instructor accounts are credits: the instructor gains when the sum falls.
        owed[account] -= amount_fen
        kind = row_kind(entry_kind)
        if kind is not None:
            by_kind[kind] -= amount_fen
    return Movements(by_kind=by_kind, pending_fen=owed[pending], available_fen=owed[available])


# A `StatementRow`'s fields in its own order, as a plain tuple: what a closed statement
# stores, built without a frozen dataclass each (a busy month has a hundred thousand).
RowValues = tuple
_ROW_FIELDS = [field.name for field in fields(StatementRow)]
ROW_KIND, ROW_SHARE = _ROW_FIELDS.index("kind"), _ROW_FIELDS.index("share_fen")  # their places in RowValues


class EntryRows(NamedTuple):
    """One journal entry as a statement takes it in: how it moved what the instructor is
    owed, by its postings, and the rows it prints (none for a release)."""

    entry_id: int
    pending_fen: int
    available_fen: int
    rows: list[StatementRow]


class EntryValues(NamedTuple):
    """`EntryRows` with each row as its `RowValues`."""

    entry_id: int
    pending_fen: int
    available_fen: int
    rows: list[RowValues]


def month_entries(instructor_id: int, entries: Sequence[ColumnElement[bool]]) -> Iterator[EntryRows]:
    """Every entry matching ``entries`` (criteria on `JournalEntry`) that posts to the
    instructor's accounts, in statement order (time, then id), with the rows `rows_for`
    would give it; each entry's rows are checked to add up to its postings. As
    `month_entry_values`, which says how it reads them."""
    for entry_id, pending_fen, available_fen, rows in month_entry_values(instructor_id, entries):
        yield EntryRows(entry_id, pending_fen, available_fen, [StatementRow(*values) for values in rows])


def month_entry_values(instructor_id: int, entries: Sequence[ColumnElement[bool]]) -> Iterator[EntryValues]:
    """`month_entries` with each row as its field values: for a writer that stores them.

    One query, streamed (a server-side cursor on PostgreSQL), gives a sale's entry with
    every line of its order (the fee is spread over all of them) and a refund's with the
    lines it refunds, each with its fee and this instructor's share; memory holds one
    batch. A Core query, its rows read by position: ORM result rows and named access
    cost more than the rows' own arithmetic. The caller may write between entries in
    the same transaction, but must not end it before the entries are exhausted."""
    result = db.session.connection().execute(
        _facts(instructor_id, entries), execution_options={"yield_per": FETCH_BATCH})
    for entry_id, facts in groupby(result, key=itemgetter(0)):
        yield _entry_values(entry_id, list(facts), instructor_id)


def _facts(instructor_id: int, entries: Sequence[ColumnElement[bool]]) -> Select:
    pending, available = accounts.instructor_accounts(instructor_id)
    keys = (JournalEntry.id, JournalEntry.kind, JournalEntry.created_at, JournalEntry.source_key,
            JournalEntry.order_id)
    entry = (
        select(
            *keys,
            func.sum(case((Posting.account == pending, Posting.amount_fen), else_=0)).label("pending_posted"),
            func.sum(case((Posting.account == available, Posting.amount_fen), else_=0)).label("available_posted"),
        )
        .join(Posting, Posting.entry_id == JournalEntry.id)
        .where(*entries, Posting.account.in_((pending, available)))
        .group_by(*keys)
        .cte("statement_entry")
    )
    share = and_(OrderLineShare.order_line_id == OrderLine.id, OrderLineShare.instructor_id == instructor_id)
    line_columns = (Order.order_no, OrderLine.id.label("line_id"), OrderLine.title, OrderLine.amount_fen,
                    OrderLine.tax_fen, OrderLine.commission_bps, OrderLineShare.weight,
                    OrderLineShare.weight_total, OrderLineShare.share_fen)
    entry_columns = (entry.c.id.label("entry_id"), entry.c.kind, entry.c.created_at, entry.c.pending_posted,
                     entry.c.available_posted)
    sales = (
        select(*entry_columns, PaymentAttempt.fee_fen, *line_columns)
        .select_from(entry)
        .join(PaymentAttempt, and_(PaymentAttempt.order_id == entry.c.order_id,
                                   entry.c.source_key == literal("payment:") + cast(PaymentAttempt.id, String)))
        .join(Order, Order.id == entry.c.order_id)
        .join(OrderLine, OrderLine.order_id == entry.c.order_id)
        .outerjoin(OrderLineShare, share)
        .where(entry.c.kind == "payment")
    )
    balance_sales = (
        select(*entry_columns, cast(literal(0), Integer), *line_columns)
        .select_from(entry)
        .join(Order, Order.id == entry.c.order_id)
        .join(OrderLine, OrderLine.order_id == entry.c.order_id)
        .outerjoin(OrderLineShare, share)
        .where(entry.c.kind == "wallet_payment")
    )
    refunds = (
        select(*entry_columns, Refund.fee_fen, *line_columns)
        .select_from(entry)
        .join(Refund, and_(Refund.order_id == entry.c.order_id,
                           entry.c.source_key == literal("refund:") + cast(Refund.id, String)))
        .join(RefundLine, RefundLine.refund_id == Refund.id)
        .join(OrderLine, OrderLine.id == RefundLine.order_line_id)
        .join(Order, Order.id == entry.c.order_id)
        .outerjoin(OrderLineShare, share)
        .where(entry.c.kind == "refund")
    )
    none_int, none_text = cast(null(), Integer), cast(null(), String)
    others = select(
        *entry_columns, none_int, none_text, none_int, none_text, none_int, none_int, none_int, none_int,
        none_int, none_int,
    ).where(entry.c.kind.not_in(SALE_KINDS + ("refund",)))
    facts = union_all(sales, balance_sales, refunds, others).subquery("fact")
    return select(facts).order_by(facts.c.created_at, facts.c.entry_id, facts.c.line_id)


def _entry_values(entry_id: int, facts: list[Row], instructor_id: int) -> EntryValues:
    # The facts' columns by position (`_facts`): the entry's first, its line's from the seventh.
    first = facts[0]
    entry_kind = first[1]
    if entry_kind in SALE_KINDS + ("refund",):
        occurred_at = beijing(first[2]).replace(tzinfo=None)
        kind, sign = ("sale", 1) if entry_kind in SALE_KINDS else ("refund", -1)
        rows = _line_values(occurred_at, kind, facts, first[5] or 0, sign)
    elif entry_kind == "release":
        rows = []
    else:
        rows = [astuple(row) for row in rows_for([db.session.get(JournalEntry, entry_id)], instructor_id)]
    # Instructor accounts are credits: the instructor gains when the sum falls.
    pending_fen, available_fen = -first[3], -first[4]
    if sum(row[ROW_SHARE] for row in rows) != pending_fen + available_fen:
        raise ActivityMismatch(f"entry {entry_id}: rows do not add up for instructor {instructor_id}")
    return EntryValues(entry_id, pending_fen, available_fen, rows)


def _line_values(occurred_at: datetime, kind: str, lines: list[Row], fee_fen: int, sign: int) -> list[RowValues]:
    """As `activity._line_rows`: one row per line the instructor has a share of, the fee
    spread over the lines by amount, the way it was charged."""
    # line[9]: the order line's amount_fen (the facts' columns, `_facts`).
    fees = [fee_fen] if len(lines) == 1 else allocate(fee_fen, [line[9] for line in lines])
    rows = []
    for (_entry_id, _entry_kind, _created_at, _pending, _available, _fee_fen, order_no, _line_id, title, amount_fen,
         tax_fen, commission_bps, weight, weight_total, share_fen), line_fee in zip(lines, fees):
        if weight is None:
            continue
        rows.append((
            occurred_at, kind, order_no, title, sign * amount_fen, sign * tax_fen, sign * line_fee, commission_bps,
            f"{weight}/{weight_total}" if weight_total != weight else None, sign * share_fen, "",
        ))
    return rows
