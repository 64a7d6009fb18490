"""A closed statement as the files its instructor and the back office download.

The CSV streams: its lines are read a batch at a time and handed on as CSV text, so a
statement of 100,000 lines costs the memory of one batch and its first bytes leave
before its last lines are read. The PDF is built whole (reportlab lays a table out in
memory), up to `PDF_MAX_LINES` lines; a longer statement's PDF is its header and summary
and points to the CSV (app/earnings/statement_files.py says why).
"""
from __future__ import annotations

from typing import Iterator

from app.earnings.documents import StatementRow
from app.earnings.models import Statement
from app.earnings.statement_files import PDF_MAX_LINES, statement_csv_chunks, statement_pdf
from app.earnings.statements import line_count, statement_head, stored_document, stored_line_batches
from app.extensions import db


def statement_csv_stream(statement: Statement) -> Iterator[bytes]:
    """The statement's CSV in pieces, for ``Response(stream_with_context(...))``.

    Each batch of lines is read in a transaction of its own, ended before the batch is
    written out: a download lasts as long as the client takes to read it, and a
    transaction held that long would keep SQLite's write lock (every transaction here
    begins IMMEDIATE: app/database.py) or a PostgreSQL snapshot and connection. Nothing
    is written in a download, so ending the transaction loses nothing.
    """
    head = statement_head(statement)
    statement_id = statement.id

    def rows() -> Iterator[StatementRow]:
        for batch in stored_line_batches(statement_id):
            db.session.rollback()
            yield from batch

    return statement_csv_chunks(head, rows())


def statement_pdf_file(statement: Statement, font_path: str | None) -> bytes:
    """The statement's PDF; the lines are not even loaded when there are too many to list."""
    count = line_count(statement.id)
    if count > PDF_MAX_LINES:
        return statement_pdf(statement_head(statement), font_path, line_count=count)
    return statement_pdf(stored_document(statement), font_path)
