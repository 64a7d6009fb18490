"""reconciliation runs and discrepancies

Daily reconciliation against the channels' bills: one run per channel and Beijing day,
and the discrepancies staff resolve. Two new tables, and indexes on when attempts and
refunds succeeded (a run reads a day's window of each).

Revision ID: db2afe3c118f
Revises: 0cc5f68cd03b
Create Date: 2026-11-24 01:26:28.504037

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'db2afe3c118f'
down_revision = '0cc5f68cd03b'
branch_labels = None
depends_on = None


def upgrade():
    # Reconciliation reads the attempts and refunds completed in a day's window.
    with op.batch_alter_table('payment_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_attempts_succeeded_at'), ['succeeded_at'], unique=False)
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_succeeded_at'), ['succeeded_at'], unique=False)

    op.create_table('reconciliation_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('bill_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('lines_checked', sa.Integer(), nullable=False),
    sa.Column('discrepancies_found', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=255), nullable=True),
    sa.Column('next_try_at', sa.DateTime(), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("channel IN ('alipay', 'wechat')", name=op.f('ck_reconciliation_runs_channel')),
    sa.CheckConstraint("status IN ('pending', 'finished', 'failed')", name=op.f('ck_reconciliation_runs_status')),
    sa.CheckConstraint('lines_checked >= 0 AND discrepancies_found >= 0', name=op.f('ck_reconciliation_runs_counts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_runs')),
    sa.UniqueConstraint('channel', 'bill_date', name=op.f('uq_reconciliation_runs_channel_bill_date'))
    )
    with op.batch_alter_table('reconciliation_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconciliation_runs_status'), ['status'], unique=False)

    op.create_table('discrepancies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('bill_date', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=10), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('out_trade_no', sa.String(length=64), nullable=False),
    sa.Column('out_refund_no', sa.String(length=64), nullable=True),
    sa.Column('channel_trade_no', sa.String(length=64), nullable=True),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('refund_id', sa.Integer(), nullable=True),
    sa.Column('ours_amount_fen', sa.Integer(), nullable=True),
    sa.Column('theirs_amount_fen', sa.Integer(), nullable=True),
    sa.Column('ours_status', sa.String(length=16), nullable=True),
    sa.Column('theirs_state', sa.String(length=16), nullable=True),
    sa.Column('ours_fee_fen', sa.Integer(), nullable=True),
    sa.Column('theirs_fee_fen', sa.Integer(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(), nullable=True),
    sa.Column('found_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('cleared_at', sa.DateTime(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('resolution', sa.String(length=10), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('resolved_by', sa.Integer(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('asked_at', sa.DateTime(), nullable=True),
    sa.Column('last_check_outcome', sa.String(length=255), nullable=True),
    sa.Column('last_checked_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("channel IN ('alipay', 'wechat')", name=op.f('ck_discrepancies_channel')),
    sa.CheckConstraint("kind IN ('missing_ours', 'missing_theirs', 'amount_mismatch', 'status_mismatch', 'fee_mismatch')", name=op.f('ck_discrepancies_kind')),
    sa.CheckConstraint("resolution IS NULL OR resolution IN ('corrected', 'channel', 'accepted')", name=op.f('ck_discrepancies_resolution')),
    sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f('ck_discrepancies_status')),
    sa.CheckConstraint("subject IN ('payment', 'refund')", name=op.f('ck_discrepancies_subject')),
    sa.ForeignKeyConstraint(['attempt_id'], ['payment_attempts.id'], name=op.f('fk_discrepancies_attempt_id_payment_attempts')),
    sa.ForeignKeyConstraint(['refund_id'], ['refunds.id'], name=op.f('fk_discrepancies_refund_id_refunds')),
    sa.ForeignKeyConstraint(['resolved_by'], ['users.id'], name=op.f('fk_discrepancies_resolved_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_discrepancies')),
    sa.UniqueConstraint('channel', 'bill_date', 'kind', 'subject', 'reference', name=op.f('uq_discrepancies_channel_bill_date_kind_subject_reference'))
    )
    with op.batch_alter_table('discrepancies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_discrepancies_attempt_id'), ['attempt_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_discrepancies_bill_date'), ['bill_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_discrepancies_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_discrepancies_out_trade_no'), ['out_trade_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_discrepancies_refund_id'), ['refund_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_discrepancies_status'), ['status'], unique=False)



def downgrade():
    with op.batch_alter_table('discrepancies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_discrepancies_status'))
        batch_op.drop_index(batch_op.f('ix_discrepancies_refund_id'))
        batch_op.drop_index(batch_op.f('ix_discrepancies_out_trade_no'))
        batch_op.drop_index(batch_op.f('ix_discrepancies_kind'))
        batch_op.drop_index(batch_op.f('ix_discrepancies_bill_date'))
        batch_op.drop_index(batch_op.f('ix_discrepancies_attempt_id'))

    op.drop_table('discrepancies')
    with op.batch_alter_table('reconciliation_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconciliation_runs_status'))

    op.drop_table('reconciliation_runs')
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_succeeded_at'))
    with op.batch_alter_table('payment_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_attempts_succeeded_at'))
