"""Migrations have one head, and `flask db upgrade` builds the schema the models describe."""
from __future__ import annotations

from pathlib import Path

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


BEFORE_EARNINGS = "8f2a1876d696"
SOLD_BEFORE_RULES = (
    "INSERT INTO users (id, email, display_name, password_hash, role, is_active_account, created_at) "
    "VALUES (1, 'l@example.com', 'L', 'x', 'learner', true, '2026-11-01 00:00:00')",
    "INSERT INTO instructors (id, name, bio_zh, bio_en, commission_bps) VALUES (1, 'A', '', '', 6500)",
    "INSERT INTO courses (id, slug, instructor_id, title_zh, title_en, summary_zh, summary_en, price_fen, "
    "commission_bps, cover_from, cover_to, is_published, created_at) VALUES "
    "(1, 'c', 1, 'c', 'c', '', '', 10000, 5500, '#fff', '#000', true, '2026-11-01 00:00:00'), "
    "(2, 'd', 1, 'd', 'd', '', '', 9999, NULL, '#fff', '#000', true, '2026-11-01 00:00:00'), "
    "(3, 'e', 1, 'e', 'e', '', '', 500000, NULL, '#fff', '#000', true, '2026-11-01 00:00:00')",
    "INSERT INTO orders (id, order_no, user_id, status, currency, subtotal_fen, discount_fen, tax_fen, "
    "total_fen, expires_at, created_at) VALUES (1, 'O1', 1, 'paid', 'CNY', 519999, 0, 0, 519999, "
    "'2026-11-01 00:15:00', '2026-11-01 00:00:00')",
    "INSERT INTO order_lines (id, order_id, course_id, title, instructor_id, commission_bps, list_price_fen, "
    "discount_fen, tax_fen, amount_fen) VALUES (1, 1, 1, 'c', 1, 5500, 10000, 0, 0, 10000), "
    "(2, 1, 2, 'd', 1, 6500, 9999, 0, 0, 9999), "
    # ¥5,000 at 65 %: the product of amount and rate overflows a 32-bit integer.
    "(3, 1, 3, 'e', 1, 6500, 500000, 0, 0, 500000)",
)


def test_the_earnings_migration_keeps_rates_and_shares_both_ways(
    keys_dir: Path, tmp_path: Path, empty_database_url: str
) -> None:
    """Rates become rules in force since long ago, each sold line gets the share the ledger
    booked for it (half up), and a downgrade puts the rates back into their columns."""
    app = create_app(base_config(empty_database_url, keys_dir, tmp_path))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade", BEFORE_EARNINGS]).exit_code == 0
    with app.app_context():
        with db.engine.begin() as connection:
            for statement in SOLD_BEFORE_RULES:
                connection.exec_driver_sql(statement)
        db.engine.dispose()
    # Down to the revision before earnings, through any later revision.
    for args in (["db", "upgrade"], ["db", "downgrade", BEFORE_EARNINGS]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, (args, result.output)
        with app.app_context():
            with db.engine.connect() as connection:
                if args[1] == "upgrade":
                    rules = connection.exec_driver_sql(
                        "SELECT instructor_id, course_id, rate_bps FROM commission_rules ORDER BY id").all()
                    shares = connection.exec_driver_sql(
                        "SELECT order_line_id, instructor_id, share_fen FROM order_line_shares ORDER BY id").all()
                    assert [tuple(rule) for rule in rules] == [(1, None, 6500), (None, 1, 5500)]
                    assert [tuple(share) for share in shares] == [(1, 1, 5500), (2, 1, 6499), (3, 1, 325000)]
                else:
                    rates = connection.exec_driver_sql(
                        "SELECT (SELECT commission_bps FROM instructors WHERE id = 1), commission_bps "
                        "FROM courses ORDER BY id").all()
                    assert [tuple(rate) for rate in rates] == [(6500, 5500), (6500, None), (6500, None)]
            db.engine.dispose()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    with app.app_context():
        db.engine.dispose()


RECONCILIATION_TABLES = {"reconciliation_runs", "discrepancies"}
# A run reads the attempts and refunds completed in a day's window.
RECONCILIATION_INDEXES = {"ix_payment_attempts_succeeded_at", "ix_refunds_succeeded_at"}
SECOND_FACTOR_TABLES = {"recovery_codes"}
SECOND_FACTOR_COLUMNS = {"totp_key_id", "totp_ciphertext", "totp_last_step", "mfa_enrolled_at",
                         "mfa_failures", "mfa_locked_until", "session_version"}
LOCKOUT_COLUMNS = {"login_failures", "login_locked_until"}
# Tables of revisions above the lockout, which the last full upgrade adds too.
LATER_TABLES = {"invoice_requests", "outbox_messages", "receipts", "platform_endpoints",
                "platform_events", "platform_deliveries", "platform_delivery_attempts",
                "bundles", "bundle_courses", "membership_plans", "memberships", "membership_pools",
                "membership_pool_shares"}
A_STAFF_MEMBER = (
    "INSERT INTO users (id, email, display_name, password_hash, role, is_active_account, created_at) "
    "VALUES (7, 's@example.com', 'S', 'x', 'support', true, '2026-11-01 00:00:00')"
)


def test_the_latest_migrations_downgrade_and_upgrade_again(
    keys_dir: Path, tmp_path: Path, empty_database_url: str
) -> None:
    """The password lockout (upgraded to by name: the statement-lines index lies above it)
    drops only its own user columns; the one beneath it (the staff second factor) drops
    only its own table and user columns, keeping the users, and adds them back (a user
    from before gets session version 1 and no second factor); the one beneath that
    (reconciliation) drops only its own tables and indexes; the earnings schema beneath
    them all is untouched both ways."""
    app = create_app(base_config(empty_database_url, keys_dir, tmp_path))
    runner = app.test_cli_runner()

    def schema() -> tuple[set[str], set[str], set[str], set[str]]:
        with app.app_context():
            inspector = sa.inspect(db.engine)
            tables = set(inspector.get_table_names())
            columns = {column["name"] for column in inspector.get_columns("payment_attempts")}
            user_columns = {column["name"] for column in inspector.get_columns("users")}
            indexes = {str(index["name"]) for table in ("payment_attempts", "refunds")
                       for index in inspector.get_indexes(table)}
            db.engine.dispose()
        return tables, columns, indexes, user_columns

    def run_sql(statement: str) -> list[tuple]:
        with app.app_context():
            with db.engine.begin() as connection:
                result = connection.exec_driver_sql(statement)
                rows = [tuple(row) for row in result] if result.returns_rows else []
            db.engine.dispose()
        return rows

    seen = []
    for args in (["db", "upgrade", "a7d2f4e91c30"], ["db", "downgrade"], ["db", "downgrade"], ["db", "downgrade"],
                 ["db", "upgrade"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, (args, result.output)
        seen.append(schema())
        if len(seen) == 1:
            run_sql(A_STAFF_MEMBER)
    upgraded, without_lockout, without_factor, without_reconciliation, again = seen

    assert LOCKOUT_COLUMNS <= upgraded[3]
    assert without_lockout[3] == upgraded[3] - LOCKOUT_COLUMNS
    assert without_lockout[:3] == upgraded[:3]

    assert SECOND_FACTOR_TABLES <= upgraded[0] and SECOND_FACTOR_COLUMNS <= upgraded[3]
    assert without_factor[0] == upgraded[0] - SECOND_FACTOR_TABLES
    assert without_factor[3] == without_lockout[3] - SECOND_FACTOR_COLUMNS
    assert without_factor[2] == upgraded[2]

    assert RECONCILIATION_TABLES <= upgraded[0] and RECONCILIATION_INDEXES <= upgraded[2]
    assert without_reconciliation[0] == without_factor[0] - RECONCILIATION_TABLES
    assert without_reconciliation[2] == upgraded[2] - RECONCILIATION_INDEXES

    tables, columns, indexes, user_columns = again
    assert (tables - LATER_TABLES, indexes, user_columns) == (upgraded[0], upgraded[2], upgraded[3])
    assert {"commission_rules", "order_line_shares", "payouts", "statements"} <= tables
    assert "fee_fen" in columns
    assert run_sql("SELECT email, session_version, mfa_failures, totp_ciphertext, mfa_enrolled_at, "
                   "login_failures, login_locked_until FROM users WHERE id = 7"
                   ) == [("s@example.com", 1, 0, None, None, 0, None)]
