"""The statement lines' copied keys (instructor, journal entry) lose their foreign keys
and indexes and get them back, on both databases: in place on PostgreSQL, by a table
copy on SQLite that keeps the rows and the append-only triggers."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db
from tests.conftest import base_config

BEFORE = "e5d19a7c3b42"
THIS = "b7e2c9d40a16"
A_CLOSED_LINE = (
    "INSERT INTO instructors (id, name, bio_zh, bio_en) VALUES (1, 'A', '', '')",
    "INSERT INTO journal_entries (id, kind, source_key, memo, created_at) "
    "VALUES (1, 'adjustment', 'adjustment:1', '', '2026-10-05 00:00:00')",
    "INSERT INTO statements (id, instructor_id, period, instructor_name, opening_fen, sales_fen, refunds_fen, "
    "adjustments_fen, payouts_fen, closing_fen, pending_fen, available_fen, rule_text, closed_at) "
    "VALUES (1, 1, '2026-10', 'A', 0, 0, 0, 100, 0, 100, 0, 100, 'rule', '2026-11-01 00:00:00')",
    "INSERT INTO statement_entries (id, statement_id, instructor_id, entry_id) VALUES (1, 1, 1, 1)",
    "INSERT INTO statement_lines (id, statement_id, instructor_id, entry_id, position, occurred_at, kind, "
    "share_fen, memo) VALUES (1, 1, 1, 1, 1, '2026-10-05 08:00:00', 'adjustment', 100, 'bonus')",
)


def test_the_copied_keys_lose_their_foreign_keys_and_indexes_and_get_them_back(
    keys_dir: Path, tmp_path: Path, empty_database_url: str  # noqa: F811
) -> None:
    app = create_app(base_config(empty_database_url, keys_dir, tmp_path))
    runner = app.test_cli_runner()

    def schema() -> tuple[set[str], set[str], set[str], list[tuple]]:
        with app.app_context():
            inspector = sa.inspect(db.engine)
            foreign_keys = {key["constrained_columns"][0] for key in inspector.get_foreign_keys("statement_lines")}
            indexes = {str(index["name"]) for index in inspector.get_indexes("statement_lines")}
            with db.engine.connect() as connection:
                if db.engine.dialect.name == "postgresql":
                    triggers = connection.exec_driver_sql(
                        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'statement_lines'::regclass "
                        "AND NOT tgisinternal").scalars()
                else:
                    triggers = connection.exec_driver_sql(
                        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'statement_lines'"
                    ).scalars()
                triggers = set(triggers)
                lines = [tuple(line) for line in connection.exec_driver_sql(
                    "SELECT id, statement_id, instructor_id, entry_id, position, share_fen, memo FROM statement_lines")]
            db.engine.dispose()
        return foreign_keys, indexes, triggers, lines

    assert runner.invoke(args=["db", "upgrade", BEFORE]).exit_code == 0
    with app.app_context():
        with db.engine.begin() as connection:
            for statement in A_CLOSED_LINE:
                connection.exec_driver_sql(statement)
        db.engine.dispose()
    seen = [schema()]
    for args in (["db", "upgrade", THIS], ["db", "downgrade", BEFORE], ["db", "upgrade", THIS]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, (args, result.output)
        seen.append(schema())
    before, upgraded, downgraded, again = seen

    assert before[0] == {"statement_id", "instructor_id", "entry_id"}
    assert upgraded[0] == {"statement_id"}
    assert before[1] == {"ix_statement_lines_statement_id_position", "ix_statement_lines_instructor_id",
                         "ix_statement_lines_entry_id"}
    assert upgraded[1] == {"ix_statement_lines_statement_id_position"}
    assert downgraded == before and again == upgraded
    assert before[2] and before[2] == upgraded[2]  # the append-only triggers survive SQLite's table copy
    assert before[3] == [(1, 1, 1, 1, 1, 100, "bonus")]

    with app.app_context():
        for change in ("UPDATE statement_lines SET share_fen = 1", "DELETE FROM statement_lines"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                with db.engine.begin() as connection:
                    connection.exec_driver_sql(change)
        db.engine.dispose()
