"""Rows in bulk: ids drawn from the database up front, then whole tables written at once
(PostgreSQL's COPY through psycopg 3, SQLite's executemany), never ORM objects.

Ids come from where the database itself would take them: on PostgreSQL each table's own
sequence (``nextval`` many at a time), so sequences stay consistent and nothing needs a
``setval`` afterwards; on SQLite, max(id) + 1, which is what SQLite itself does, read
inside the batch's transaction, which holds the write lock (BEGIN IMMEDIATE).
"""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import Connection

from app.extensions import db

# The columns each table is written with, in the order rows are built. Every NOT NULL
# column is named, server default or not: COPY applies only server defaults.
COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("id", "email", "display_name", "password_hash", "role", "is_active_account", "created_at",
              "mfa_failures", "login_failures", "session_version"),
    "orders": ("id", "order_no", "user_id", "status", "currency", "subtotal_fen", "discount_fen", "tax_fen",
               "total_fen", "coupon_id", "coupon_code", "expires_at", "created_at", "paid_at", "closed_at"),
    "order_lines": ("id", "order_id", "course_id", "title", "instructor_id", "commission_bps", "list_price_fen",
                    "discount_fen", "tax_fen", "amount_fen"),
    "order_line_shares": ("order_line_id", "instructor_id", "weight", "weight_total", "share_fen"),
    "coupon_redemptions": ("coupon_id", "user_id", "order_id", "created_at", "released_at"),
    "payment_attempts": ("id", "order_id", "channel", "out_trade_no", "amount_fen", "status", "qr_code",
                         "channel_trade_no", "expires_at", "created_at", "succeeded_at", "closed_at", "fee_fen",
                         "qr_issued_at", "queries", "channel_opened_at", "booked_at"),
    "notification_inbox": ("channel", "dedupe_key", "out_trade_no", "attempt_id", "trade_state", "amount_fen",
                           "channel_trade_no", "paid_at", "raw_body", "status", "outcome", "deliveries",
                           "received_at", "processed_at"),
    "enrollments": ("user_id", "course_id", "order_id", "granted_at", "revoked_at"),
    "journal_entries": ("id", "kind", "source_key", "order_id", "memo", "created_at"),
    "postings": ("entry_id", "account", "amount_fen"),
    "refunds": ("id", "refund_no", "order_id", "attempt_id", "kind", "amount_fen", "reason", "status",
                "channel_refund_no", "fee_fen", "tries", "created_at", "succeeded_at", "requested_by",
                "first_approved_by", "decided_by", "decided_at", "decision_reason"),
    "refund_lines": ("refund_id", "order_line_id", "amount_fen"),
    "audit_log": ("actor_id", "actor_email", "action", "target_type", "target_id", "before", "after", "reason",
                  "created_at"),
}
# Tables whose ids other rows point at; the rest take theirs from the database default.
WITH_IDS = ("users", "orders", "order_lines", "payment_attempts", "journal_entries", "refunds")
# Ids drawn from a sequence at once: few at first, twice as many each time a table needs
# more, so the ids a run leaves unused are fewer than it used (refunds are rare).
FIRST_ID_BLOCK, LARGEST_ID_BLOCK = 256, 32_768


class IdPool:
    """Hands out ids for the tables in WITH_IDS, a block at a time."""

    def __init__(self) -> None:
        self._free: dict[str, list[int]] = defaultdict(list)
        self._block: dict[str, int] = defaultdict(lambda: FIRST_ID_BLOCK)
        self._next_sqlite: dict[str, int] = {}

    def begin_batch(self, connection: Connection) -> None:
        if connection.dialect.name == "sqlite":
            for name in WITH_IDS:
                table = db.metadata.tables[name]
                self._next_sqlite[name] = (connection.scalar(select(func.max(table.c.id))) or 0) + 1

    def take(self, connection: Connection, table: str) -> int:
        if connection.dialect.name == "sqlite":
            value = self._next_sqlite[table]
            self._next_sqlite[table] = value + 1
            return value
        free = self._free[table]
        if not free:
            # Values taken from a sequence are never handed out again, even if this
            # transaction rolls back: unused ones are gaps, as after any failed insert.
            block = connection.scalar(
                text("SELECT array_agg(nextval(pg_get_serial_sequence(:table, 'id')))"
                     " FROM generate_series(1, :count)"),
                {"table": table, "count": self._block[table]},
            )
            self._block[table] = min(2 * self._block[table], LARGEST_ID_BLOCK)
            free.extend(sorted(block, reverse=True))
        return free.pop()


class BatchRows:
    """The rows of one batch, table by table, each a tuple in COLUMNS order."""

    def __init__(self) -> None:
        self.tables: dict[str, list[tuple]] = {name: [] for name in COLUMNS}
        # Coupon id -> uses these orders keep (redemptions not released): the coupon's
        # counter goes up by as much when the batch is written.
        self.coupon_uses: dict[int, int] = {}


def write(connection: Connection, batch: BatchRows) -> None:
    """Write every table of the batch, parents before children, and count its coupon
    uses. Runs in the caller's transaction."""
    coupons = db.metadata.tables["coupons"]
    for coupon_id, uses in batch.coupon_uses.items():
        connection.execute(update(coupons).where(coupons.c.id == coupon_id)
                           .values(redeemed_count=coupons.c.redeemed_count + uses))
    for name, rows in batch.tables.items():
        if not rows:
            continue
        if connection.dialect.name == "postgresql":
            _copy(connection, name, rows)
        else:
            columns = COLUMNS[name]
            connection.execute(insert(db.metadata.tables[name]), [dict(zip(columns, row)) for row in rows])


def _copy(connection: Connection, name: str, rows: list[tuple]) -> None:
    # The session's own psycopg connection, so COPY joins the batch's transaction.
    driver = connection.connection.driver_connection
    statement = f"COPY {name} ({', '.join(COLUMNS[name])}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
