"""The bare stack: the fastest this machine serves the two shapes of work the hot paths do.

Flask and SQLAlchemy Core on the same PostgreSQL driver, under the same gunicorn, with
none of the site's layers (no sessions, no login, no CSRF, no rate limits, no ORM):

- ``GET /items/<id>``: a primary-key read returned as a small JSON document, the shape
  of the status poll (baseline a);
- ``POST /callback``: the smallest transaction a payment callback can be: an inbox row
  with a unique key, a conditional status update, three ledger rows, commit, the shape
  of notify ingestion and checkout (baseline b).

`bench/run.py` creates the tables (`create_tables`) and serves this module as
``gunicorn bench.baseline_app:app``.
"""
from __future__ import annotations

import os

import sqlalchemy as sa
from flask import Flask, jsonify, request

metadata = sa.MetaData()

items = sa.Table(
    "bench_items", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("order_no", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("total_fen", sa.BigInteger, nullable=False),
)
inbox = sa.Table(
    "bench_inbox", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("dedupe_key", sa.String(96), nullable=False, unique=True),
    sa.Column("body", sa.Text, nullable=False),
)
postings = sa.Table(
    "bench_postings", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("item_id", sa.BigInteger, nullable=False),
    sa.Column("account", sa.String(32), nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
)

ITEMS = 1_000_000


def create_tables(engine: sa.Engine) -> None:
    """The tables, with ``ITEMS`` pending items (numbered in SQL: seconds, not minutes)."""
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO bench_items (id, order_no, status, total_fen) "
            f"SELECT n, 'CC' || lpad(n::text, 20, '0'), 'pending', 9900 FROM generate_series(1, {ITEMS}) n"
        )
        connection.exec_driver_sql("ANALYZE bench_items")


def create_app() -> Flask:
    app = Flask(__name__)
    engine = sa.create_engine(os.environ["DATABASE_URL"], pool_pre_ping=False)

    @app.get("/items/<int:item_id>")
    def read_item(item_id: int):  # noqa: ANN202
        with engine.connect() as connection:
            row = connection.execute(sa.select(items).where(items.c.id == item_id)).one_or_none()
        if row is None:
            return jsonify(code="not_found"), 404
        return jsonify(order_no=row.order_no, status=row.status, total_fen=row.total_fen)

    @app.post("/callback")
    def callback():  # noqa: ANN202
        key = request.form["key"]
        item_id = int(request.form["item"])
        with engine.begin() as connection:
            connection.execute(inbox.insert().values(dedupe_key=key, body=request.get_data(as_text=True)))
            connection.execute(
                items.update()
                .where(items.c.id == item_id, items.c.status == "pending")
                .values(status="paid")
            )
            connection.execute(postings.insert(), [
                {"item_id": item_id, "account": "channel_clearing", "amount_fen": 9900},
                {"item_id": item_id, "account": "instructor_payable", "amount_fen": -6930},
                {"item_id": item_id, "account": "platform_revenue", "amount_fen": -2970},
            ])
        return "success"

    return app


app = create_app() if "DATABASE_URL" in os.environ else None
