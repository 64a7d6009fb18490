"""alerts

Issue 11's alerts: the `alerts` table of alert episodes (one row from when a condition
starts firing to when it clears), with a partial unique index allowing one open episode
per key, so concurrent periodic rounds cannot open it twice; and an index on
notification_inbox (channel, received_at) for a channel's latest callback (the
channel-silence alert). The inbox index is built CONCURRENTLY on PostgreSQL, as
6350a4cca3ef does, so a live table keeps taking callbacks.

Revision ID: 9c3f5a8e1d27
Revises: 7b1e4d9a2f60
Create Date: 2026-11-27 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9c3f5a8e1d27'
down_revision = '7b1e4d9a2f60'
branch_labels = None
depends_on = None

OPEN = "cleared_at IS NULL"
INBOX_INDEX = "ix_notification_inbox_channel_received_at"


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('message', sa.String(length=255), nullable=False),
    sa.Column('fired_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('cleared_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("severity IN ('critical', 'warning')", name=op.f('ck_alerts_severity')),
    sa.CheckConstraint('cleared_at IS NULL OR cleared_at >= fired_at', name=op.f('ck_alerts_cleared_after_fired')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_fired_at'), ['fired_at'], unique=False)
        batch_op.create_index('uq_alerts_open_key', ['key'], unique=True,
                              sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
    if _postgresql():
        with op.get_context().autocommit_block():
            op.create_index(INBOX_INDEX, "notification_inbox", ["channel", "received_at"],
                            postgresql_concurrently=True, if_not_exists=True)
    else:
        op.create_index(INBOX_INDEX, "notification_inbox", ["channel", "received_at"])


def downgrade():
    if _postgresql():
        with op.get_context().autocommit_block():
            op.drop_index(INBOX_INDEX, table_name="notification_inbox", postgresql_concurrently=True,
                          if_exists=True)
    else:
        op.drop_index(INBOX_INDEX, table_name="notification_inbox")
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('uq_alerts_open_key')
        batch_op.drop_index(batch_op.f('ix_alerts_fired_at'))

    op.drop_table('alerts')
