"""password lockout

Wrong passwords in a row lock an account's password step for a while: on users, the
count of wrong passwords since the last right one and the lock they lead to.

Revision ID: a7d2f4e91c30
Revises: 5e3a9c1d7b42
Create Date: 2026-11-24 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7d2f4e91c30'
down_revision = '5e3a9c1d7b42'
branch_labels = None
depends_on = None


def _recreate_on_sqlite():
    # SQLite adds a CHECK constraint only by copying the table; PostgreSQL alters in place.
    return 'always' if op.get_bind().dialect.name == 'sqlite' else 'auto'


def upgrade():
    with op.batch_alter_table('users', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.add_column(sa.Column('login_failures', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('login_locked_until', sa.DateTime(), nullable=True))
        batch_op.create_check_constraint(batch_op.f('ck_users_login_failures'), 'login_failures >= 0')


def downgrade():
    with op.batch_alter_table('users', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_users_login_failures'), type_='check')
        batch_op.drop_column('login_locked_until')
        batch_op.drop_column('login_failures')
