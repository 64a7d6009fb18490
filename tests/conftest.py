from __future__ import annotations

import logging
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.database import APPEND_ONLY_TABLES, append_only_sqlite
from app.extensions import db
from tests.wsgi_transport import WSGITransport

TEST_REDIS_URL = "redis://127.0.0.1:6379/0"

KEYS = Path(__file__).parent / "keys"
TEST_BASE_URL = "http://cashier.test"

# The committed test key pairs, under the names the app looks for in KEYS_DIR.
KEY_FILES = {
    "alipay_app_private.pem": "alipay_app_private.pem",
    "alipay_app_public.pem": "alipay_app_public.pem",
    "alipay_gateway_private.pem": "alipay_platform_private.pem",
    "alipay_gateway_public.pem": "alipay_platform_public.pem",
    "wechat_mch_private.pem": "wechat_mch_private.pem",
    "wechat_mch_public.pem": "wechat_mch_public.pem",
    "wechat_platform_private.pem": "wechat_platform_private.pem",
    "wechat_platform_public.pem": "wechat_platform_public.pem",
    "wechat_apiv3.key": "wechat_apiv3.key",
}


SESSION_LOG = "session.log"
LOG_HYGIENE_MODULE = "test_zz_log_hygiene.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The log scan runs after every other test, whatever the order of collection."""
    items.sort(key=lambda item: item.path.name == LOG_HYGIENE_MODULE)


@pytest.fixture(scope="session")
def session_log_handler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[logging.Handler]:
    """Every log record of the test session, down to DEBUG, in one file that
    tests/test_zz_log_hygiene.py scans for secrets.

    SQLAlchemy's statement log stays off, as in production (its parameters are hidden
    anyway: app/database.py); everything else logs at DEBUG, so a leak that only a
    verbose deployment would show is found too."""
    handler = logging.FileHandler(tmp_path_factory.getbasetemp() / SESSION_LOG, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root, statements = logging.getLogger(), logging.getLogger("sqlalchemy")
    levels = (root.level, statements.level)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        statements.setLevel(levels[1])
        handler.close()


@pytest.fixture(autouse=True)
def session_log(session_log_handler: logging.Handler) -> None:
    """Logging to the session's log, put back before each test: a test may reconfigure
    logging (Alembic's env.py loads alembic.ini, which replaces the root logger's
    handlers and level)."""
    root = logging.getLogger()
    if session_log_handler not in root.handlers:
        root.addHandler(session_log_handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)


@dataclass
class Clock:
    """An injected clock: naive UTC, moved only by the test."""

    current: datetime = field(default_factory=lambda: datetime(2026, 11, 20, 2, 0, 0))

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    for target, source in KEY_FILES.items():
        shutil.copy(KEYS / source, folder / target)
    return folder


def _postgres_admin_url() -> str | None:
    return os.environ.get("TEST_POSTGRES_URL") or None


@contextmanager
def fresh_postgres_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database named ``prefix`` + random hex; its URL, and
    dropped afterwards (forcibly: a test may leave a connection open)."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLite by default; a fresh PostgreSQL database when TEST_POSTGRES_URL is set."""
    admin_url = _postgres_admin_url()
    if admin_url is None:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'cashier.db'}"
        return
    with fresh_postgres_database(admin_url, "cashier_test_") as url:
        yield url


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the suite's kind: a SQLite file, or a fresh PostgreSQL one."""
    admin_url = _postgres_admin_url()
    if not admin_url:
        yield f"sqlite:///{tmp_path / 'roundtrip.db'}"
        return
    with fresh_postgres_database(admin_url, "cashier_migrations_") as url:
        yield url


@pytest.fixture(scope="session")
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


def base_config(database_url: str, keys_dir: Path, instance: Path) -> dict:
    return {
        "APP_ENV": "testing",
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-000",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "KEYS_DIR": str(keys_dir),
        "PUBLIC_BASE_URL": TEST_BASE_URL,
        "PAYMENT_GATEWAY_EMULATOR": True,
        "WTF_CSRF_ENABLED": False,
        "GATEWAY_NOTIFY_SYNC": True,
        # The tests read the pages in English unless they ask for Chinese (tests/test_i18n.py).
        "DEFAULT_LOCALE": "en",
        # The console backend writes into the test's own folder, not the project's instance/.
        "MAIL_OUTBOX_DIR": str(instance / "mail"),
    }


_schema_ready: set[str] = set()


def reset_database(app: Flask) -> None:
    """A clean schema per test: created once per database, then emptied."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    with app.app_context():
        if url not in _schema_ready:
            db.drop_all()
            db.create_all()
            _schema_ready.add(url)
            return
        tables = [table.name for table in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as connection:
            if db.engine.dialect.name == "postgresql":
                names = ", ".join(f'"{name}"' for name in tables)
                connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
            else:
                # Append-only tables refuse DELETE by trigger; lift the guard while emptying.
                for name in APPEND_ONLY_TABLES:
                    connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}_no_delete")
                for name in tables:
                    connection.exec_driver_sql(f'DELETE FROM "{name}"')
                for name in APPEND_ONLY_TABLES:
                    connection.exec_driver_sql(append_only_sqlite(name)[1])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(request: pytest.FixtureRequest, database_url: str, keys_dir: Path, tmp_path: Path,
        clock: Clock) -> Iterator[Flask]:
    """The app on a clean database; ``@pytest.mark.app_config(NAME=value)`` sets config
    the app reads as it is created (rate limits, say)."""
    config = base_config(database_url, keys_dir, tmp_path)
    config["CLOCK"] = clock
    for marker in request.node.iter_markers("app_config"):
        config.update(marker.kwargs)
    app = create_app(config)
    reset_database(app)
    transport = WSGITransport(app)
    for session in (app.extensions["cashier.http"], app.extensions.get("cashier.gateway_http")):
        if session is not None:
            session.mount(TEST_BASE_URL, transport)
    app.extensions["test.transport"] = transport
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    for connection in app.extensions.get("cashier.redis", {}).values():
        connection.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


@pytest.fixture
def queued(app: Flask) -> Iterator[None]:
    """Jobs go to the real Redis, not run inline, so a view is measured without the jobs
    it enqueues; this test's queue keys are removed afterwards."""
    prefix = f"queued-{uuid.uuid4().hex[:8]}"
    app.config.update(REDIS_URL=TEST_REDIS_URL, JOBS_QUEUE_PREFIX=prefix)
    yield
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    for key in connection.scan_iter(f"*{prefix}*"):
        connection.delete(key)
    connection.close()
    for client in app.extensions.get("cashier.redis", {}).values():
        client.close()
