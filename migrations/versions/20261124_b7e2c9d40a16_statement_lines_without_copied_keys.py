"""statement lines without foreign keys on their copied columns

statement_lines.instructor_id and entry_id repeat what the statement and its
statement_entries rows record, and those are the foreign keys that hold (the model's
docstring, app/earnings/models.py, says why that suffices). As foreign keys of their
own they cost closing a busy month a lookup and a row lock per line, about 1 s of
9.7 s at 124,000 lines; nothing reads lines by those columns, so their indexes go too.
statement_id keeps its foreign key, and (statement_id, position) its unique index.

PostgreSQL alters the table in place. SQLite drops a foreign key only by copying the
table (batch mode), and the copy loses the append-only triggers, so they are created
again, the same statements app/database.py installs.

Revision ID: b7e2c9d40a16
Revises: e5d19a7c3b42
Create Date: 2026-11-25 10:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'b7e2c9d40a16'
down_revision = 'e5d19a7c3b42'
branch_labels = None
depends_on = None

TABLE = 'statement_lines'
COPIED_KEYS = (('instructor_id', 'instructors'), ('entry_id', 'journal_entries'))


def _sqlite() -> bool:
    return op.get_bind().dialect.name == 'sqlite'


def _append_only_again():
    """The table copy of SQLite's batch mode drops the table's triggers with the table."""
    if not _sqlite():
        return
    for statement in (
        f"CREATE TRIGGER {TABLE}_no_update BEFORE UPDATE ON {TABLE} "
        f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END",
        f"CREATE TRIGGER {TABLE}_no_delete BEFORE DELETE ON {TABLE} "
        f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END",
    ):
        op.execute(statement)


def upgrade():
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        for column, referred in COPIED_KEYS:
            batch_op.drop_index(batch_op.f(f'ix_{TABLE}_{column}'))
            batch_op.drop_constraint(batch_op.f(f'fk_{TABLE}_{column}_{referred}'), type_='foreignkey')
    _append_only_again()


def downgrade():
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        for column, referred in COPIED_KEYS:
            batch_op.create_foreign_key(batch_op.f(f'fk_{TABLE}_{column}_{referred}'), referred, [column], ['id'])
            batch_op.create_index(batch_op.f(f'ix_{TABLE}_{column}'), [column], unique=False)
    _append_only_again()
