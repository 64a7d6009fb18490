"""A busy month's statement: closed in bulk, its CSV streamed a batch of lines at a time,
its PDF without the lines past a limit.

The oracles are the previous implementations, kept here verbatim: the CSV built whole
from the statement's lines loaded as objects, and the rows computed entry by entry
through the ORM (`activity.rows_for`, still the code the earnings page uses).
"""
from __future__ import annotations

import csv
import io
import sqlite3
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pypdf
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select, text

from app import create_app
from app.accounts.services import create_user
from app.checkout.models import Order
from app.earnings import adjustments, payouts, statements
from app.earnings.activity import entries_touching, rows_for
from app.earnings.bank_accounts import save_bank_account
from app.earnings.documents import StatementDocument, StatementRow
from app.earnings.models import Statement, StatementEntry, StatementLine
from app.earnings.periods import first_day, last_day
from app.earnings.statement_files import (
    _TEXT_COLUMNS, COLUMNS, OPENING_LABEL, PDF_MAX_LINES, _bilingual, _header_lines, _row_fields, _summary_lines,
    csv_text_cell,
)
from app.extensions import db
from app.jobs.periodic import tick
from app.ledger import accounts
from app.ledger.models import JournalEntry
from app.ledger.services import post_entry
from app.money import format_yuan
from app.timeutil import beijing
from tests.conftest import base_config
from tests.earnings_helpers import make_course_of, make_instructor, refund_lines, sell
from tests.helpers import login

PASSWORD = "teacher-password"


# --- The previous implementation, verbatim: the oracle ------------------------------------


def previous_stored_document(statement: Statement) -> StatementDocument:
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


def previous_statement_csv(document: StatementDocument) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for label, values in _header_lines(document):
        writer.writerow([label, *(csv_text_cell(value) for value in values)])
    writer.writerow([])
    writer.writerow([OPENING_LABEL, format_yuan(document.opening_fen)])
    writer.writerow([])
    writer.writerow([_bilingual(column) for column in COLUMNS])
    for row in document.rows:
        fields = _row_fields(row)
        writer.writerow(
            [
                csv_text_cell(value) if index in _TEXT_COLUMNS else value
                for index, value in enumerate(fields)
            ]
        )
    writer.writerow([])
    for label, amount_fen in _summary_lines(document):
        writer.writerow([label, format_yuan(amount_fen)])
    return buffer.getvalue().encode("utf-8-sig")


def previous_csv_of(app: Flask, instructor_id: int, period: str) -> bytes:
    with app.app_context():
        return previous_statement_csv(previous_stored_document(statements.find_statement(instructor_id, period)))


def entry_by_entry(instructor_id: int, entry_ids: list[int]) -> list[tuple[int, StatementRow]]:
    """What `activity.rows_for` gives for these entries, in statement order."""
    entries = db.session.scalars(
        select(JournalEntry).where(JournalEntry.id.in_(entry_ids)).order_by(JournalEntry.created_at, JournalEntry.id)
    )
    return [(entry.id, row) for entry in entries for row in rows_for([entry], instructor_id)]


# --- A busy little month: every kind of row ----------------------------------------------


@pytest.fixture
def october(app: Flask, clock) -> dict[str, int]:
    """林晓 in October 2026: sales alone and beside other instructors' courses (the fee is
    spread over every line), a co-authored course (2 of 3), a partial refund, a release,
    an adjustment, a payout and a payout the bank returned. Not closed yet."""
    clock.current = datetime(2026, 10, 3, 2, 0)
    with app.app_context():
        lin_user = create_user("lin@example.com", PASSWORD, "林晓", role="instructor")
        bob_user = create_user("bob@example.com", PASSWORD, "Bob", role="instructor")
        learner = create_user("ann@example.com", "correct-horse", "Ann")
        support = create_user("sam@example.com", "staff-password", "Sam", role="support")
        finance = create_user("fay@example.com", "staff-password", "Fay", role="finance")
        lin = make_instructor("林晓", 7000, user_id=lin_user)
        bob = make_instructor("Bob", 6000, user_id=bob_user)
        other = make_instructor("Other", 5000)
        solo = make_course_of(lin, 9900, "solo")
        shared = make_course_of(lin, 19900, "shared", authors=[(lin, 2), (bob, 1)])
        formula = make_course_of(lin, 4900, "formula")
        elsewhere = make_course_of(other, 12345, "elsewhere")
        mixed = sell(learner, [solo, shared, elsewhere], channel="wechat")
        clock.advance(hours=5)
        buyers = [create_user(f"buyer{number}@example.com", "correct-horse", f"B{number}") for number in range(5)]
        for buyer, courses in zip(buyers, ([solo], [shared, elsewhere], [formula], [solo, formula, elsewhere],
                                           [shared])):
            sell(buyer, courses)
            clock.advance(minutes=7)
        line = db.session.get(Order, mixed).lines[1]
        refund_lines(mixed, learner, [line.id], [support])
        clock.current = datetime(2026, 10, 12, 2, 0)
        tick()  # releases the first sales
        adjustments.post_adjustment(lin, -1234, "=SUM(A1) correction", finance, uuid.uuid4().hex)
        save_bank_account(lin, "林晓", "Bank", "6222020200001234567", finance)
        payouts.create_batch("2026-10", 100, finance)
        db.session.commit()
        payout_id = db.session.scalar(select(payouts.Payout.id).where(payouts.Payout.instructor_id == lin))
        payouts.mark_failed(payout_id, "account closed", finance)
        db.session.commit()
        clock.current = datetime(2026, 10, 20, 2, 0)
        sell(buyers[0], [shared])
    return {"lin": lin, "bob": bob, "finance": finance}


def close_october(app: Flask, clock) -> None:
    clock.current = datetime(2026, 11, 1, 1, 0)  # 09:00 on 1 November in Beijing
    with app.app_context():
        tick()


def test_the_fixture_prints_every_kind_of_row(app, clock, october):
    close_october(app, clock)
    with app.app_context():
        statement = statements.find_statement(october["lin"], "2026-10")
        assert {line.kind for line in statement.lines} == {"sale", "refund", "adjustment", "payout"}
        assert any(line.weight_note == "2/3" for line in statement.lines)
        assert len(statement.lines) > 10


def test_a_closed_month_has_the_lines_the_entry_by_entry_path_gives(app, clock, october):
    close_october(app, clock)
    with app.app_context():
        for instructor_id in (october["lin"], october["bob"]):
            statement = statements.find_statement(instructor_id, "2026-10")
            taken = list(db.session.scalars(
                select(StatementEntry.entry_id).where(StatementEntry.statement_id == statement.id)))
            stored = [
                (line.entry_id, StatementRow(
                    occurred_at=line.occurred_at, kind=line.kind, order_no=line.order_no,
                    course_title=line.course_title, amount_fen=line.amount_fen, tax_fen=line.tax_fen,
                    fee_fen=line.fee_fen, rate_bps=line.rate_bps, weight_note=line.weight_note,
                    share_fen=line.share_fen, memo=line.memo))
                for line in statement.lines
            ]
            assert stored == entry_by_entry(instructor_id, taken)
            assert [line.position for line in statement.lines] == list(range(1, len(stored) + 1))
            totals = {kind: sum(row.share_fen for _, row in stored if row.kind == kind)
                      for kind in ("sale", "refund", "adjustment", "payout")}
            assert totals == {"sale": statement.sales_fen, "refund": statement.refunds_fen,
                              "adjustment": statement.adjustments_fen, "payout": statement.payouts_fen}


def test_the_open_month_reads_the_rows_the_entry_by_entry_path_gives(app, clock, october):
    clock.current = datetime(2026, 10, 25, 2, 0)
    with app.app_context():
        lin = october["lin"]
        entry_ids = list(db.session.scalars(
            select(JournalEntry.id).where(JournalEntry.id.in_(entries_touching(lin)))))
        document = statements.open_document(lin)
        assert list(document.rows) == [row for _, row in entry_by_entry(lin, entry_ids)]
        assert document.closing_fen == document.pending_fen + document.available_fen


def test_the_streamed_csv_is_the_bytes_the_previous_implementation_gave(app, clock, october):
    close_october(app, clock)
    for email, instructor_id in (("lin@example.com", october["lin"]), ("bob@example.com", october["bob"])):
        client = app.test_client()
        login(client, email, PASSWORD)
        response = client.get("/earnings/statements/2026-10.csv")
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert response.headers["Content-Disposition"] == 'attachment; filename="statement-2026-10.csv"'
        assert response.data == previous_csv_of(app, instructor_id, "2026-10")


# --- Thousands of lines, written straight into a closed statement ----------------------------


def bulk_statement(app: Flask, line_count: int) -> tuple[int, int]:
    """A closed October statement of ``line_count`` lines for a new instructor with a
    login (lin@example.com), written in bulk; returns (instructor id, statement id)."""
    with app.app_context():
        user_id = create_user("lin@example.com", PASSWORD, "林晓", role="instructor")
        instructor_id = make_instructor("林晓", 7000, user_id=user_id)
        entry_id = post_entry("adjustment", f"adjustment:{uuid.uuid4().hex}",
                              [(accounts.instructor_available(instructor_id), -100),
                               (accounts.PLATFORM_REVENUE, 100)])
        titles = ("Python 数据分析实战", '=HYPERLINK("http://attacker.invalid")', "C++ & Go, \"quoted\"\nline")
        lines = []
        for position in range(1, line_count + 1):
            sale = position % 5 != 0
            lines.append(dict(
                instructor_id=instructor_id, entry_id=entry_id, position=position,
                occurred_at=datetime(2026, 10, 1, 8, 0) + timedelta(minutes=position),
                kind="sale" if sale else "refund", order_no=f"CC2026100{position:013d}",
                course_title=titles[position % 3], amount_fen=(9900 if sale else -9900) + position,
                tax_fen=0 if sale else -5, fee_fen=(59 if sale else -59), rate_bps=7000,
                weight_note="2/3" if position % 7 == 0 else None,
                share_fen=(6930 if sale else -6930), memo="" if sale else f"-refund {position}",
            ))
        sales = sum(line["share_fen"] for line in lines if line["kind"] == "sale")
        refunds = sum(line["share_fen"] for line in lines if line["kind"] == "refund")
        statement = Statement(
            instructor_id=instructor_id, period="2026-10", instructor_name="林晓", opening_fen=1000,
            sales_fen=sales, refunds_fen=refunds, adjustments_fen=0, payouts_fen=0,
            closing_fen=1000 + sales + refunds, pending_fen=500, available_fen=500 + sales + refunds,
            rule_text="分成 = 分成比例 × (订单行金额 − 税额)", closed_at=datetime(2026, 10, 31, 17, 0),
        )
        db.session.add(statement)
        db.session.flush()
        db.session.execute(insert(StatementLine), [dict(line, statement_id=statement.id) for line in lines])
        db.session.commit()
        return instructor_id, statement.id


def instructor_client(app: Flask) -> FlaskClient:
    client = app.test_client()
    login(client, "lin@example.com", PASSWORD)
    return client


def test_a_statement_of_thousands_of_lines_streams_in_several_chunks(app):
    instructor_id, _ = bulk_statement(app, 3000)
    client = instructor_client(app)
    response = client.get("/earnings/statements/2026-10.csv", buffered=False)
    assert response.status_code == 200
    assert response.is_streamed and "Content-Length" not in response.headers
    chunks = list(response.response)
    response.close()
    assert len(chunks) > 3
    # The header leaves before any line is read; no piece is more than about 64 KB.
    assert chunks[0].startswith(b"\xef\xbb\xbf") and b"CC2026100" not in chunks[0]
    assert max(len(chunk) for chunk in chunks) < 80 * 1024
    body = b"".join(chunks)
    assert body == previous_csv_of(app, instructor_id, "2026-10")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert sum(1 for row in rows if row and row[0].startswith("2026-10-")) == 3000


def test_stored_lines_read_in_batches_are_the_statement_in_order(app):
    _, statement_id = bulk_statement(app, 50)
    with app.app_context():
        statement = db.session.get(Statement, statement_id)
        whole = list(previous_stored_document(statement).rows)
        batches = list(statements.stored_line_batches(statement_id, batch_size=7))
        assert [len(batch) for batch in batches] == [7] * 7 + [1]
        assert [row for batch in batches for row in batch] == whole
        assert statements.stored_document(statement).rows == tuple(whole)


def assert_no_transaction_held(app: Flask, is_postgres: bool) -> None:
    """No connection of the app's database sits in a transaction: on SQLite, where every
    transaction here takes the write lock, a payment could be written right now."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if is_postgres:
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            holding = connection.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()")).scalar()
        engine.dispose()
        assert holding == 0
    else:
        writer = sqlite3.connect(sa.engine.make_url(url).database, timeout=0.5, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # "database is locked" if a download held it
            writer.execute("ROLLBACK")
        finally:
            writer.close()


def test_a_streamed_download_holds_no_transaction_while_the_client_reads(app, is_postgres):
    bulk_statement(app, 3000)
    client = instructor_client(app)
    response = client.get("/earnings/statements/2026-10.csv", buffered=False)
    pieces = iter(response.response)
    next(pieces), next(pieces)  # the header, then lines: the first batch has been read
    assert_no_transaction_held(app, is_postgres)
    rest = b"".join(pieces)
    response.close()
    assert rest.endswith(b"\r\n") and "期末余额".encode() in rest


def test_the_open_months_csv_streams_what_its_document_holds(app, clock, october, is_postgres):
    clock.current = datetime(2026, 10, 25, 2, 0)
    client = app.test_client()
    login(client, "lin@example.com", PASSWORD)
    response = client.get("/earnings/statements/2026-10.csv", buffered=False)
    assert response.status_code == 200 and response.is_streamed
    pieces = iter(response.response)
    first = next(pieces)
    assert_no_transaction_held(app, is_postgres)  # computed whole, before it streams
    body = first + b"".join(pieces)
    response.close()
    with app.app_context():
        assert body == previous_statement_csv(statements.open_document(october["lin"]))
    assert "未结账 open" in body.decode("utf-8-sig")


def test_the_back_office_streams_the_same_csv(app):
    instructor_id, statement_id = bulk_statement(app, 2500)
    with app.app_context():
        create_user("fay@example.com", "staff-password-1", "Fay", role="finance")
        db.session.commit()
    finance = app.test_client()
    login(finance, "fay@example.com", "staff-password-1")
    response = finance.get(f"/admin/statement/{statement_id}/csv", buffered=False)
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Cache-Control"] == "no-store"
    chunks = list(response.response)
    response.close()
    assert len(chunks) > 1
    assert b"".join(chunks) == previous_csv_of(app, instructor_id, "2026-10")


# --- The PDF past its limit -------------------------------------------------------------------


def pdf_text(body: bytes) -> tuple[int, str]:
    pages = pypdf.PdfReader(io.BytesIO(body)).pages
    return len(pages), "\n".join(page.extract_text() for page in pages)


def test_a_pdf_of_more_lines_than_the_limit_keeps_header_and_summary_and_points_to_the_csv(app):
    bulk_statement(app, PDF_MAX_LINES + 1)
    client = instructor_client(app)
    response = client.get("/earnings/statements/2026-10.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    pages, words = pdf_text(response.data)
    assert pages == 1
    assert f"{PDF_MAX_LINES + 1:,}" in words and "every line is in the CSV" in words
    assert "林晓" in words and "Closing balance" in words and "of which available" in words
    assert "CC2026100" not in words  # no line is listed


def test_the_limit_is_the_number_of_lines_a_pdf_still_lists(app):
    bulk_statement(app, 40)
    client = instructor_client(app)
    pages, words = pdf_text(client.get("/earnings/statements/2026-10.pdf").data)
    assert "-refund 40" in words and "every line is in the CSV" not in words
    assert pages >= 1


# --- The migration ---------------------------------------------------------------------------


def test_the_statement_lines_index_migration_goes_down_and_up_in_place(keys_dir: Path, tmp_path: Path):
    """Only the index changes, in place: SQLite keeps the append-only triggers (a table
    copy would drop them)."""
    path = tmp_path / "migrated.db"
    app = create_app(base_config(f"sqlite:///{path}", keys_dir, tmp_path))
    runner = app.test_cli_runner()

    def schema() -> tuple[set[str], set[str]]:
        with sqlite3.connect(path) as connection:
            indexes = {name for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'statement_lines'")}
            triggers = {name for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'statement_lines'")}
        return indexes, triggers

    seen = []  # by name: later revisions may lie above this one
    for args in (["db", "upgrade", "c4e8b2d61f07"], ["db", "downgrade", "a7d2f4e91c30"],
                 ["db", "upgrade", "c4e8b2d61f07"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, (args, result.output)
        seen.append(schema())
    upgraded, downgraded, again = seen
    assert "ix_statement_lines_statement_id_position" in upgraded[0]
    assert "ix_statement_lines_statement_id" not in upgraded[0]
    assert downgraded[0] == upgraded[0] - {"ix_statement_lines_statement_id_position"} | {
        "ix_statement_lines_statement_id"}
    assert again == upgraded
    assert upgraded[1] == downgraded[1] == {"statement_lines_no_update", "statement_lines_no_delete"}
    with app.app_context():
        db.engine.dispose()
