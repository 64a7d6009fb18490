"""PostgreSQL pool: a connection idle for a while is pinged before use, and one in
steady use is not (app/database.py). Against the real server: the tests kill a pooled
connection's backend with ``pg_terminate_backend`` and see what the next request gets."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask

from app import database
from app.extensions import db


@pytest.fixture
def pg_app(app: Flask, is_postgres: bool) -> Flask:
    if not is_postgres:
        pytest.skip("PostgreSQL only: SQLite has no server to lose")
    return app


def pooled_backend_pid(app: Flask) -> int:
    """Use one pooled connection and return it to the pool; its server process id."""
    with app.app_context(), db.engine.connect() as connection:
        return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


def kill_backend(app: Flask, pid: int) -> None:
    killer = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=sa.pool.NullPool)
    with killer.connect() as connection:
        assert connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid})").scalar_one()
    killer.dispose()


def one(app: Flask) -> int:
    with app.app_context(), db.engine.connect() as connection:
        return connection.exec_driver_sql("SELECT 1").scalar_one()


def test_an_idle_connection_that_died_is_replaced_before_use(
    pg_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = pooled_backend_pid(pg_app)
    kill_backend(pg_app, dead)
    monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)  # every pooled connection counts as idle

    assert one(pg_app) == 1  # no error reaches the caller
    assert pooled_backend_pid(pg_app) != dead


def test_a_ping_leaves_no_transaction_open(pg_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    # The status poll switches its connection to autocommit, which a driver refuses
    # inside a transaction: the ping must not have begun one.
    pooled_backend_pid(pg_app)
    monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)
    with pg_app.app_context(), db.engine.connect() as connection:
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        assert autocommit.exec_driver_sql("SELECT 1").scalar_one() == 1


def test_a_connection_in_steady_use_is_not_pinged_and_one_failure_clears_the_pool(
    pg_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "IDLE_PING_SECONDS", 3600.0)
    dead = pooled_backend_pid(pg_app)
    kill_backend(pg_app, dead)

    # Not pinged, so the statement itself finds the connection dead...
    with pytest.raises(sa.exc.OperationalError) as raised:
        one(pg_app)
    assert raised.value.connection_invalidated
    # ...and SQLAlchemy drops it: the next request gets a live one.
    assert one(pg_app) == 1
    assert pooled_backend_pid(pg_app) != dead
