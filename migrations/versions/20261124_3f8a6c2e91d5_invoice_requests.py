"""invoice requests

Invoice requests (电子发票, issue 10): one table, with the issued file in the row and a
partial unique index that allows one open request (requested, issued,
red_letter_required) per order.

Revision ID: 3f8a6c2e91d5
Revises: b7e2c9d40a16
Create Date: 2026-11-24 16:24:57.372709

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3f8a6c2e91d5'
down_revision = 'b7e2c9d40a16'
branch_labels = None
depends_on = None

OPEN = "status IN ('requested', 'issued', 'red_letter_required')"


def upgrade():
    op.create_table('invoice_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('title_type', sa.String(length=10), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('tax_id', sa.String(length=18), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('refunded_fen', sa.Integer(), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=False),
    sa.Column('requested_at', sa.DateTime(), nullable=False),
    sa.Column('invoice_number', sa.String(length=20), nullable=True),
    sa.Column('file_content', sa.LargeBinary(), nullable=True),
    sa.Column('file_type', sa.String(length=3), nullable=True),
    sa.Column('file_size', sa.Integer(), nullable=True),
    sa.Column('file_sha256', sa.String(length=64), nullable=True),
    sa.Column('issued_by', sa.Integer(), nullable=True),
    sa.Column('issued_at', sa.DateTime(), nullable=True),
    sa.Column('rejected_by', sa.Integer(), nullable=True),
    sa.Column('rejected_at', sa.DateTime(), nullable=True),
    sa.Column('reject_reason', sa.String(length=255), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(), nullable=True),
    sa.Column('red_letter_flagged_at', sa.DateTime(), nullable=True),
    sa.Column('red_letter_number', sa.String(length=20), nullable=True),
    sa.Column('reversed_by', sa.Integer(), nullable=True),
    sa.Column('reversed_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("(title_type = 'company' AND tax_id IS NOT NULL) OR (title_type = 'personal' AND tax_id IS NULL)", name=op.f('ck_invoice_requests_tax_id')),
    sa.CheckConstraint("amount_fen > 0 OR (status = 'cancelled' AND amount_fen = 0)", name=op.f('ck_invoice_requests_amount_fen')),
    sa.CheckConstraint("file_type IS NULL OR file_type IN ('pdf', 'ofd')", name=op.f('ck_invoice_requests_file_type')),
    sa.CheckConstraint("status IN ('requested', 'issued', 'rejected', 'cancelled', 'red_letter_required', 'reversed')", name=op.f('ck_invoice_requests_status')),
    sa.CheckConstraint("status NOT IN ('issued', 'red_letter_required', 'reversed') OR (invoice_number IS NOT NULL AND file_type IS NOT NULL)", name=op.f('ck_invoice_requests_issued_has_number_and_file')),
    sa.CheckConstraint("title_type IN ('personal', 'company')", name=op.f('ck_invoice_requests_title_type')),
    sa.CheckConstraint('file_size IS NULL OR file_size > 0', name=op.f('ck_invoice_requests_file_size')),
    sa.CheckConstraint('refunded_fen >= 0', name=op.f('ck_invoice_requests_refunded_fen')),
    sa.ForeignKeyConstraint(['issued_by'], ['users.id'], name=op.f('fk_invoice_requests_issued_by_users')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_invoice_requests_order_id_orders')),
    sa.ForeignKeyConstraint(['rejected_by'], ['users.id'], name=op.f('fk_invoice_requests_rejected_by_users')),
    sa.ForeignKeyConstraint(['requested_by'], ['users.id'], name=op.f('fk_invoice_requests_requested_by_users')),
    sa.ForeignKeyConstraint(['reversed_by'], ['users.id'], name=op.f('fk_invoice_requests_reversed_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_requests')),
    sa.UniqueConstraint('invoice_number', name=op.f('uq_invoice_requests_invoice_number')),
    sa.UniqueConstraint('red_letter_number', name=op.f('uq_invoice_requests_red_letter_number'))
    )
    with op.batch_alter_table('invoice_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoice_requests_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_requests_requested_at'), ['requested_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_requests_status'), ['status'], unique=False)
        # One open request per order: a rejected, cancelled or reversed one frees it.
        batch_op.create_index('uq_invoice_requests_open_order', ['order_id'], unique=True,
                              sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))

def downgrade():
    with op.batch_alter_table('invoice_requests', schema=None) as batch_op:
        batch_op.drop_index('uq_invoice_requests_open_order')
        batch_op.drop_index(batch_op.f('ix_invoice_requests_status'))
        batch_op.drop_index(batch_op.f('ix_invoice_requests_requested_at'))
        batch_op.drop_index(batch_op.f('ix_invoice_requests_order_id'))

    op.drop_table('invoice_requests')
