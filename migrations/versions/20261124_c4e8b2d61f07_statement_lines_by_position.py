"""statement lines by position

A unique index on statement lines by (statement, position): a statement's lines are
read in order a batch at a time (keyset pagination) as its CSV streams, and each batch
is then one range scan of this index. It replaces the index on the statement alone,
which it covers. Created in place on both databases (no table copy on SQLite, which
would lose the append-only triggers).

Revision ID: c4e8b2d61f07
Revises: a7d2f4e91c30
Create Date: 2026-11-24 12:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'c4e8b2d61f07'
down_revision = 'a7d2f4e91c30'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_statement_lines_statement_id_position', 'statement_lines', ['statement_id', 'position'],
                    unique=True)
    op.drop_index('ix_statement_lines_statement_id', table_name='statement_lines')


def downgrade():
    op.create_index('ix_statement_lines_statement_id', 'statement_lines', ['statement_id'], unique=False)
    op.drop_index('ix_statement_lines_statement_id_position', table_name='statement_lines')
