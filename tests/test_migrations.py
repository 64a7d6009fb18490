"""Migrations have one head, and `flask db upgrade` builds the schema the models describe."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from app import create_app
from app.extensions import db
from tests.conftest import base_config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def test_migrations_have_a_single_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_upgrade_builds_the_schema_of_the_models(keys_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    app = create_app(base_config(url, keys_dir, tmp_path))
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            differences = compare_metadata(context, db.metadata)
        tables = sa.inspect(db.engine).get_table_names()
        db.engine.dispose()
    assert differences == []
    assert {"orders", "payment_attempts", "notification_inbox", "postings"} <= set(tables)


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the suite's kind: a SQLite file, or a fresh PostgreSQL one."""
    admin_url = os.environ.get("TEST_POSTGRES_URL")
    if not admin_url:
        yield f"sqlite:///{tmp_path / 'roundtrip.db'}"
        return
    name = f"cashier_migrations_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_the_latest_migration_downgrades_and_upgrades_again(
    keys_dir: Path, tmp_path: Path, empty_database_url: str
) -> None:
    """The hand-written parts (renamed columns, rebuilt CHECK constraints) run both ways."""
    app = create_app(base_config(empty_database_url, keys_dir, tmp_path))
    runner = app.test_cli_runner()
    for args in (["db", "upgrade"], ["db", "downgrade"], ["db", "upgrade"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, (args, result.output)
    with app.app_context():
        columns = {column["name"] for column in sa.inspect(db.engine).get_columns("gateway_notifications")}
        checks = {check["name"] for check in sa.inspect(db.engine).get_check_constraints("gateway_notifications")}
        db.engine.dispose()
    assert {"channel", "alipay_trade_id", "wechat_trade_id", "sent_body"} <= columns
    assert "ck_gateway_notifications_one_owner_of_its_channel" in checks
