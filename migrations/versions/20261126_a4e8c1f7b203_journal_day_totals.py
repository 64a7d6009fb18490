"""journal day totals

Each ended Beijing day's sales, refunds, platform revenue and instructor earnings, summed
from the journal once the day can no longer change (app/analytics/money_flow.py), so the
money charts read a row a day rather than a million postings. Derived data: dropping it
loses nothing, and the periodic tick stores the days again.

Revision ID: a4e8c1f7b203
Revises: 6350a4cca3ef
Create Date: 2026-11-26 01:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a4e8c1f7b203'
down_revision = '6350a4cca3ef'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "journal_day_totals",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sales_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunds_fen", sa.BigInteger(), nullable=False),
        sa.Column("platform_revenue_fen", sa.BigInteger(), nullable=False),
        sa.Column("instructor_earnings_fen", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_journal_day_totals")),
    )


def downgrade():
    op.drop_table("journal_day_totals")
