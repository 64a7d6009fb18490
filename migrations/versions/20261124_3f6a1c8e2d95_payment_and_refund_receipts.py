"""payment and refund receipts

Signed receipts (app/receipts): one row per payment attempt or refund, with the
canonical JSON as signed, its SHA-256, the signature and the key id. Append-only: the
same triggers app/database.py installs refuse UPDATE and DELETE.

Revision ID: 3f6a1c8e2d95
Revises: a0ecfff26270
Create Date: 2026-11-24 16:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3f6a1c8e2d95'
down_revision = "a0ecfff26270"
branch_labels = None
depends_on = None

TABLE = 'receipts'


def _append_only():
    if op.get_bind().dialect.name == 'sqlite':
        statements = (
            f"CREATE TRIGGER {TABLE}_no_update BEFORE UPDATE ON {TABLE} "
            f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END",
            f"CREATE TRIGGER {TABLE}_no_delete BEFORE DELETE ON {TABLE} "
            f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END",
        )
    else:
        statements = (
            f"CREATE OR REPLACE FUNCTION {TABLE}_append_only() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{TABLE} is append-only'; END; $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER {TABLE}_no_change BEFORE UPDATE OR DELETE ON {TABLE} "
            f"FOR EACH ROW EXECUTE FUNCTION {TABLE}_append_only()",
        )
    for statement in statements:
        op.execute(statement)


def upgrade():
    op.create_table(TABLE,
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('receipt_no', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('canonical_json', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('payment', 'refund')", name=op.f('ck_receipts_kind')),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_receipts_amount_fen')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_receipts_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receipts')),
    sa.UniqueConstraint('kind', 'source_id', name=op.f('uq_receipts_kind_source_id')),
    sa.UniqueConstraint('receipt_no', name=op.f('uq_receipts_receipt_no'))
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_receipts_order_id'), ['order_id'], unique=False)
    _append_only()


def downgrade():
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_receipts_order_id'))
    op.drop_table(TABLE)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"DROP FUNCTION IF EXISTS {TABLE}_append_only()")
