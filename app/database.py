"""Database engine settings that differ by backend.

PostgreSQL: a pooled connection that sat idle may have been closed by the server, a
restart or a firewall, so it is tested with a ping before use. A connection in steady use
is not: a round trip on every request costs the status poll and the callback view 10-15 %
of their throughput (bench/README.md). Should the server restart under load anyway, the
first statement on a dead connection fails, and SQLAlchemy then discards every connection
the pool held; that request fails before it commits, and the channel (or the poller) asks
again (tests/faults/test_postgres_restart.py).

SQLite is the embedded default: WAL so readers do not block the writer, a busy timeout
so a writer waits instead of failing, and ``BEGIN IMMEDIATE`` so a transaction takes the
write lock up front. A deferred transaction that reads, then writes, can fail with
"database is locked" when another writer got there first; an immediate one just waits.
"""
from __future__ import annotations

import time
from typing import Any

from sqlalchemy import DDL, Table, event, exc
from sqlalchemy.engine import Connection, Engine

SQLITE_BUSY_TIMEOUT_MS = 15000
# A pooled connection idle longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 5.0


def engine_options(uri: str) -> dict[str, Any]:
    """The engine options for ``uri``'s backend. Both hide statement parameters from
    SQLAlchemy's errors and logs: they hold callback bodies, token and password hashes,
    sealed bank accounts, and an error's message ends up in the log."""
    if not uri.startswith("sqlite"):
        return {"hide_parameters": True}
    return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            "hide_parameters": True}


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        configure_sqlite(engine)
    else:
        ping_idle_connections(engine)


def ping_idle_connections(engine: Engine) -> None:
    """Ping a connection on checkout only when it has been idle over IDLE_PING_SECONDS.

    A failed ping raises DisconnectionError, on which the pool drops the connection and
    checks out another (SQLAlchemy's documented pessimistic-disconnect hook)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_PING_SECONDS:
            return  # new, or in use a moment ago
        try:
            # The dialect's own ping leaves no transaction open behind it (a bare SELECT
            # would, and the status poll then could not switch the connection to autocommit).
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the driver's own error types differ; any failure means dead
            raise exc.DisconnectionError() from error
        if not alive:
            raise exc.DisconnectionError()


def one_statement_connection(engine: Engine) -> Connection:
    """A connection for a single statement, outside any ORM session.

    On PostgreSQL in autocommit: one statement is atomic and sees one snapshot by itself,
    and without BEGIN and COMMIT around it, it is one round trip to the server instead of
    three. SQLite keeps its transaction: `configure_sqlite` decides how SQLite begins
    one, and autocommit would change that connection's setting for whoever uses it next
    (the pool resets PostgreSQL's)."""
    connection = engine.connect()
    if engine.dialect.name == "postgresql":
        connection.execution_options(isolation_level="AUTOCOMMIT")
    return connection


def configure_sqlite(engine: Engine) -> None:
    """Install the pragmas and immediate transactions on a SQLite engine."""

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


# Tables whose rows are history: never updated or deleted once written.
APPEND_ONLY_TABLES: list[str] = []


def append_only_sqlite(table: str) -> tuple[str, str]:
    """The two SQLite triggers that refuse UPDATE and DELETE on ``table``.

    Migrations create the same statements, so both paths give the same schema."""
    return (
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
    )


def append_only_postgres(table: str) -> tuple[str, str]:
    return (
        f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$ "
        f"BEGIN RAISE EXCEPTION '{table} is append-only'; END; $$ LANGUAGE plpgsql",
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()",
    )


def append_only(table: Table) -> None:
    """Have the database itself refuse to rewrite ``table``, so not even a bug in this
    application can change history. Installed when the table is created."""
    APPEND_ONLY_TABLES.append(table.name)
    for statement in append_only_sqlite(table.name):
        event.listen(table, "after_create", DDL(statement).execute_if(dialect="sqlite"))
    for statement in append_only_postgres(table.name):
        event.listen(table, "after_create", DDL(statement).execute_if(dialect="postgresql"))
