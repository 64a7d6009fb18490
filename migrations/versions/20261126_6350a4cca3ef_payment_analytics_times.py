"""payment analytics times

The timeline of a payment for issue 11's measures: when the payer opened the trade at
the channel (payment_attempts.channel_opened_at, from Alipay's gmt_create; WeChat Pay
Native states no scan time) and when our booking transaction ran
(payment_attempts.booked_at). succeeded_at already holds the channel's stated payment
time. The inbox row carries the opening time from the notification to the job.

An index on payment_attempts.created_at for the analytics over a million orders: the
attempts of a month of orders are read by a range of it and hash-joined to the orders
(read by ix_orders_created_at), rather than probed once per order. Paid attempts are
read by the existing ix_payment_attempts_succeeded_at. Built CONCURRENTLY on PostgreSQL,
as e5d19a7c3b42 does, so a live table keeps taking writes.

Revision ID: 6350a4cca3ef
Revises: 84a5249cfe2e
Create Date: 2026-11-25 21:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '6350a4cca3ef'
down_revision = '84a5249cfe2e'
branch_labels = None
depends_on = None

INDEXES = (("ix_payment_attempts_created_at", ["created_at"]),)


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    with op.batch_alter_table("payment_attempts") as batch:
        batch.add_column(sa.Column("channel_opened_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("booked_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("notification_inbox") as batch:
        batch.add_column(sa.Column("opened_at", sa.DateTime(), nullable=True))
    if _postgresql():
        with op.get_context().autocommit_block():
            for name, columns in INDEXES:
                op.create_index(name, "payment_attempts", columns, postgresql_concurrently=True,
                                if_not_exists=True)
        return
    for name, columns in INDEXES:
        op.create_index(name, "payment_attempts", columns)


def downgrade():
    for name, _columns in INDEXES:
        if _postgresql():
            with op.get_context().autocommit_block():
                op.drop_index(name, table_name="payment_attempts", postgresql_concurrently=True,
                              if_exists=True)
        else:
            op.drop_index(name, table_name="payment_attempts")
    with op.batch_alter_table("notification_inbox") as batch:
        batch.drop_column("opened_at")
    with op.batch_alter_table("payment_attempts") as batch:
        batch.drop_column("booked_at")
        batch.drop_column("channel_opened_at")
