"""Database engine settings that differ by backend.

SQLite is the embedded default: WAL so readers do not block the writer, a busy timeout
so a writer waits instead of failing, and ``BEGIN IMMEDIATE`` so a transaction takes the
write lock up front. A deferred transaction that reads, then writes, can fail with
"database is locked" when another writer got there first; an immediate one just waits.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

SQLITE_BUSY_TIMEOUT_MS = 15000


def sqlite_engine_options(uri: str) -> dict[str, Any]:
    if not uri.startswith("sqlite"):
        return {"pool_pre_ping": True}
    return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}}


def configure_sqlite(engine: Engine) -> None:
    """Install the pragmas and immediate transactions on a SQLite engine."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event emit BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
