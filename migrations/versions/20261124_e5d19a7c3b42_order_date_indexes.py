"""order date indexes

Indexes on orders.created_at and orders.paid_at, which the back office filters by (a
date range over a million orders otherwise scans them all). On PostgreSQL they are built
CONCURRENTLY, outside the migration's transaction, so a live orders table keeps taking
writes while they build.

Revision ID: e5d19a7c3b42
Revises: c4e8b2d61f07
Create Date: 2026-11-24 13:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'e5d19a7c3b42'
down_revision = 'c4e8b2d61f07'
branch_labels = None
depends_on = None

INDEXES = (("ix_orders_created_at", "created_at"), ("ix_orders_paid_at", "paid_at"))


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    if _postgresql():
        with op.get_context().autocommit_block():
            for name, column in INDEXES:
                op.create_index(name, "orders", [column], postgresql_concurrently=True, if_not_exists=True)
        return
    for name, column in INDEXES:
        op.create_index(name, "orders", [column])


def downgrade():
    for name, _column in INDEXES:
        if _postgresql():
            with op.get_context().autocommit_block():
                op.drop_index(name, table_name="orders", postgresql_concurrently=True, if_exists=True)
        else:
            op.drop_index(name, table_name="orders")
