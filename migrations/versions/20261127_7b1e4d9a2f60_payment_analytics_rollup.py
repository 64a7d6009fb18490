"""payment analytics rollup

Issue 11's dashboard over a million orders: a daily rollup of its figures
(app/analytics/rollup.py), five tables keyed by Beijing day, and a partial index on the
paid attempts' timeline for the per-channel percentiles still ranked live.

The tables start empty: until the periodic tick has rolled the days up, the page
computes them live, as before. They are derived data, so the downgrade drops them.
The index is built CONCURRENTLY on PostgreSQL, as 6350a4cca3ef does, so a live
payment_attempts keeps taking writes.

Revision ID: 7b1e4d9a2f60
Revises: a4e8c1f7b203
Create Date: 2026-11-26 12:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7b1e4d9a2f60'
down_revision = 'a4e8c1f7b203'
branch_labels = None
depends_on = None

PAID_TIMELINE = "ix_payment_attempts_paid_timeline"
PAID_TIMELINE_COLUMNS = ["succeeded_at", "channel", "channel_opened_at", "qr_issued_at", "booked_at"]
PAID = sa.text("status = 'succeeded'")
TABLES = ("analytics_day_slowest", "analytics_day_fund_flow", "analytics_day_courses",
          "analytics_day_channels", "analytics_days")


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    op.create_table(
        "analytics_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("qr_shown", sa.Integer(), nullable=False),
        sa.Column("qr_opened", sa.Integer(), nullable=False),
        sa.Column("refunded", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_analytics_days")),
    )
    op.create_table(
        "analytics_day_channels",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "channel", name=op.f("pk_analytics_day_channels")),
    )
    op.create_table(
        "analytics_day_courses",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "course_id", name=op.f("pk_analytics_day_courses")),
    )
    op.create_table(
        "analytics_day_fund_flow",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("paid", sa.Integer(), nullable=False),
        sa.Column("channel_median", sa.Integer(), nullable=False),
        sa.Column("channel_p95", sa.Integer(), nullable=False),
        sa.Column("system_median", sa.Integer(), nullable=False),
        sa.Column("system_p95", sa.Integer(), nullable=False),
        sa.Column("total_median", sa.Integer(), nullable=False),
        sa.Column("total_p95", sa.Integer(), nullable=False),
        sa.CheckConstraint("channel IN ('alipay', 'wechat', 'all')", name=op.f("ck_analytics_day_fund_flow_channel")),
        sa.PrimaryKeyConstraint("day", "channel", name=op.f("pk_analytics_day_fund_flow")),
    )
    op.create_table(
        "analytics_day_slowest",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        sa.Column("total_seconds", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "attempt_id", name=op.f("pk_analytics_day_slowest")),
    )
    if _postgresql():
        with op.get_context().autocommit_block():
            op.create_index(PAID_TIMELINE, "payment_attempts", PAID_TIMELINE_COLUMNS, postgresql_where=PAID,
                            postgresql_concurrently=True, if_not_exists=True)
        return
    op.create_index(PAID_TIMELINE, "payment_attempts", PAID_TIMELINE_COLUMNS, sqlite_where=PAID)


def downgrade():
    if _postgresql():
        with op.get_context().autocommit_block():
            op.drop_index(PAID_TIMELINE, table_name="payment_attempts", postgresql_concurrently=True,
                          if_exists=True)
    else:
        op.drop_index(PAID_TIMELINE, table_name="payment_attempts")
    for table in TABLES:
        op.drop_table(table)
