"""staff second factor and session version

Staff sign in with a TOTP second factor: on users, the sealed TOTP secret (key id and
ciphertext, as bank accounts are sealed), the last accepted time-step, when the factor
was set up, the count of wrong codes and the lock they lead to; a session version that
logout and a second-factor reset raise to end sessions. A table of recovery codes
(their SHA-256 only). An index on rejected callbacks by time, for the dashboard's count.

Existing users get session version 1; their sessions (which hold the bare id) end once,
and they log in again.

Revision ID: 5e3a9c1d7b42
Revises: db2afe3c118f
Create Date: 2026-11-25 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5e3a9c1d7b42'
down_revision = 'db2afe3c118f'
branch_labels = None
depends_on = None

TOTP_SECRET_CHECK = (
    "((totp_key_id IS NULL AND totp_ciphertext IS NULL)"
    " OR (totp_key_id IS NOT NULL AND totp_ciphertext IS NOT NULL))"
    " AND (mfa_enrolled_at IS NULL OR totp_ciphertext IS NOT NULL)"
)


def _recreate_on_sqlite():
    # SQLite changes CHECK constraints only by copying the table; PostgreSQL alters in place.
    return 'always' if op.get_bind().dialect.name == 'sqlite' else 'auto'


def upgrade():
    with op.batch_alter_table('users', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.add_column(sa.Column('totp_key_id', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('totp_ciphertext', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('mfa_enrolled_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('mfa_failures', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('mfa_locked_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('session_version', sa.Integer(), nullable=False, server_default='1'))
        batch_op.create_check_constraint(batch_op.f('ck_users_totp_secret'), TOTP_SECRET_CHECK)
        batch_op.create_check_constraint(
            batch_op.f('ck_users_counters'), 'session_version >= 1 AND mfa_failures >= 0')

    op.create_table('recovery_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_recovery_codes_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_codes')),
    sa.UniqueConstraint('user_id', 'code_hash', name=op.f('uq_recovery_codes_user_id_code_hash'))
    )
    # The dashboard counts the last day's rejected callbacks: forged ones may pile up.
    op.create_index(op.f('ix_rejected_notifications_received_at'), 'rejected_notifications',
                    ['received_at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_rejected_notifications_received_at'), table_name='rejected_notifications')
    op.drop_table('recovery_codes')
    with op.batch_alter_table('users', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_users_counters'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_users_totp_secret'), type_='check')
        batch_op.drop_column('session_version')
        batch_op.drop_column('mfa_locked_until')
        batch_op.drop_column('mfa_failures')
        batch_op.drop_column('mfa_enrolled_at')
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_ciphertext')
        batch_op.drop_column('totp_key_id')
