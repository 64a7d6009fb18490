"""platform events

Signed webhooks to the platform's LMS: the endpoints admins configure (a sealed signing
secret each), the events we announce, one delivery per event and endpoint with its
retry state, and a log of every HTTP try.

Revision ID: 3f9a6c2e8d15
Revises: 3f6a1c8e2d95
Create Date: 2026-11-24 16:29:51.602431

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3f9a6c2e8d15'
down_revision = "3f6a1c8e2d95"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('platform_endpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('event_types', sa.String(length=255), nullable=False),
    sa.Column('secret_key_id', sa.String(length=16), nullable=False),
    sa.Column('secret_ciphertext', sa.Text(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('secret_rotated_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_platform_endpoints_created_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_platform_endpoints'))
    )
    with op.batch_alter_table('platform_endpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_platform_endpoints_enabled'), ['enabled'], unique=False)

    op.create_table('platform_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('dedupe_key', sa.String(length=96), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("event_type IN ('order.paid', 'order.refunded', 'enrollment.granted', 'enrollment.revoked')", name=op.f('ck_platform_events_event_type')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_platform_events_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_platform_events')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_platform_events_dedupe_key')),
    sa.UniqueConstraint('public_id', name=op.f('uq_platform_events_public_id'))
    )
    with op.batch_alter_table('platform_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_platform_events_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_platform_events_order_id'), ['order_id'], unique=False)

    op.create_table('platform_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('claimed_until', sa.DateTime(), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('last_http_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=255), nullable=True),
    sa.Column('last_response_ms', sa.Integer(), nullable=True),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.Column('resent_from_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("event_type IN ('order.paid', 'order.refunded', 'enrollment.granted', 'enrollment.revoked')", name=op.f('ck_platform_deliveries_event_type')),
    sa.CheckConstraint("status IN ('pending', 'delivering', 'delivered', 'failed')", name=op.f('ck_platform_deliveries_status')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_platform_deliveries_attempts')),
    sa.ForeignKeyConstraint(['endpoint_id'], ['platform_endpoints.id'], name=op.f('fk_platform_deliveries_endpoint_id_platform_endpoints')),
    sa.ForeignKeyConstraint(['event_id'], ['platform_events.id'], name=op.f('fk_platform_deliveries_event_id_platform_events')),
    sa.ForeignKeyConstraint(['resent_from_id'], ['platform_deliveries.id'], name=op.f('fk_platform_deliveries_resent_from_id_platform_deliveries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_platform_deliveries'))
    )
    with op.batch_alter_table('platform_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_platform_deliveries_endpoint_id'), ['endpoint_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_platform_deliveries_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_platform_deliveries_event_type'), ['event_type'], unique=False)
        batch_op.create_index('ix_platform_deliveries_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)

    op.create_table('platform_delivery_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('outcome', sa.String(length=10), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=255), nullable=True),
    sa.Column('response_ms', sa.Integer(), nullable=True),
    sa.CheckConstraint("outcome IN ('delivered', 'retry', 'failed')", name=op.f('ck_platform_delivery_attempts_outcome')),
    sa.CheckConstraint('number >= 1', name=op.f('ck_platform_delivery_attempts_number')),
    sa.ForeignKeyConstraint(['delivery_id'], ['platform_deliveries.id'], name=op.f('fk_platform_delivery_attempts_delivery_id_platform_deliveries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_platform_delivery_attempts'))
    )
    with op.batch_alter_table('platform_delivery_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_platform_delivery_attempts_delivery_id'), ['delivery_id'], unique=False)



def downgrade():
    with op.batch_alter_table('platform_delivery_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_platform_delivery_attempts_delivery_id'))

    op.drop_table('platform_delivery_attempts')
    with op.batch_alter_table('platform_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_platform_deliveries_status_next_attempt_at')
        batch_op.drop_index(batch_op.f('ix_platform_deliveries_event_type'))
        batch_op.drop_index(batch_op.f('ix_platform_deliveries_event_id'))
        batch_op.drop_index(batch_op.f('ix_platform_deliveries_endpoint_id'))

    op.drop_table('platform_deliveries')
    with op.batch_alter_table('platform_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_platform_events_order_id'))
        batch_op.drop_index(batch_op.f('ix_platform_events_created_at'))

    op.drop_table('platform_events')
    with op.batch_alter_table('platform_endpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_platform_endpoints_enabled'))

    op.drop_table('platform_endpoints')
