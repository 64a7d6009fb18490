"""bundles and membership

Bundles (several courses at one price) and the bundle each cart item and order line was
taken with; membership plans, the memberships bought (one per order, an order without
course lines, of kind ``membership``), and each month's instructor pool shared out by
lesson opens. A downgrade that would forget memberships or bundle sales is refused.

Revision ID: 84a5249cfe2e
Revises: d81e4b6a2c57
Create Date: 2026-11-24 20:32:28.860220

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "84a5249cfe2e"
down_revision = "d81e4b6a2c57"
branch_labels = None
depends_on = None


def _recreate_on_sqlite():
    return 'always' if op.get_bind().dialect.name == 'sqlite' else 'auto'


def _order_kinds(check):
    with op.batch_alter_table('orders', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_orders_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_orders_kind'), check)


def upgrade():
    _order_kinds("kind IN ('course', 'topup', 'membership')")
    op.create_table('bundles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=80), nullable=False),
    sa.Column('title_zh', sa.String(length=120), nullable=False),
    sa.Column('title_en', sa.String(length=120), nullable=False),
    sa.Column('price_fen', sa.Integer(), nullable=False),
    sa.Column('is_published', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('price_fen > 0', name=op.f('ck_bundles_price_fen')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bundles')),
    sa.UniqueConstraint('slug', name=op.f('uq_bundles_slug'))
    )
    op.create_table('membership_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title_zh', sa.String(length=120), nullable=False),
    sa.Column('title_en', sa.String(length=120), nullable=False),
    sa.Column('price_fen', sa.Integer(), nullable=False),
    sa.Column('period_days', sa.Integer(), nullable=False),
    sa.Column('pool_bps', sa.Integer(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('period_days > 0', name=op.f('ck_membership_plans_period_days')),
    sa.CheckConstraint('pool_bps BETWEEN 0 AND 10000', name=op.f('ck_membership_plans_pool_bps')),
    sa.CheckConstraint('price_fen > 0', name=op.f('ck_membership_plans_price_fen')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_membership_plans'))
    )
    op.create_table('memberships',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('period_days', sa.Integer(), nullable=False),
    sa.Column('pool_bps', sa.Integer(), nullable=False),
    sa.Column('pool_fen', sa.Integer(), nullable=True),
    sa.Column('starts_at', sa.DateTime(), nullable=True),
    sa.Column('ends_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('period_days > 0', name=op.f('ck_memberships_period_days')),
    sa.CheckConstraint('pool_bps BETWEEN 0 AND 10000', name=op.f('ck_memberships_pool_bps')),
    sa.CheckConstraint('pool_fen IS NULL OR pool_fen >= 0', name=op.f('ck_memberships_pool_fen')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_memberships_order_id_orders')),
    sa.ForeignKeyConstraint(['plan_id'], ['membership_plans.id'], name=op.f('fk_memberships_plan_id_membership_plans')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_memberships_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_memberships')),
    sa.UniqueConstraint('order_id', name=op.f('uq_memberships_order_id'))
    )
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_memberships_ends_at'), ['ends_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_memberships_plan_id'), ['plan_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_memberships_starts_at'), ['starts_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_memberships_user_id'), ['user_id'], unique=False)

    op.create_table('bundle_courses',
    sa.Column('bundle_id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['bundle_id'], ['bundles.id'], name=op.f('fk_bundle_courses_bundle_id_bundles')),
    sa.ForeignKeyConstraint(['course_id'], ['courses.id'], name=op.f('fk_bundle_courses_course_id_courses')),
    sa.PrimaryKeyConstraint('bundle_id', 'course_id', name=op.f('pk_bundle_courses'))
    )
    op.create_table('membership_pools',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('pool_fen', sa.Integer(), nullable=False),
    sa.Column('opens', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=True),
    sa.Column('memo', sa.String(length=255), nullable=False),
    sa.Column('allocated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('opens >= 0', name=op.f('ck_membership_pools_opens')),
    sa.CheckConstraint('pool_fen >= 0', name=op.f('ck_membership_pools_pool_fen')),
    sa.ForeignKeyConstraint(['entry_id'], ['journal_entries.id'], name=op.f('fk_membership_pools_entry_id_journal_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_membership_pools')),
    sa.UniqueConstraint('period', name=op.f('uq_membership_pools_period'))
    )
    op.create_table('membership_pool_shares',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pool_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('instructor_id', sa.Integer(), nullable=False),
    sa.Column('course_title', sa.String(length=120), nullable=False),
    sa.Column('opens', sa.Integer(), nullable=False),
    sa.Column('course_fen', sa.Integer(), nullable=False),
    sa.Column('share_fen', sa.Integer(), nullable=False),
    sa.CheckConstraint('opens > 0', name=op.f('ck_membership_pool_shares_opens')),
    sa.CheckConstraint('share_fen >= 0', name=op.f('ck_membership_pool_shares_share_fen')),
    sa.ForeignKeyConstraint(['course_id'], ['courses.id'], name=op.f('fk_membership_pool_shares_course_id_courses')),
    sa.ForeignKeyConstraint(['entry_id'], ['journal_entries.id'], name=op.f('fk_membership_pool_shares_entry_id_journal_entries')),
    sa.ForeignKeyConstraint(['instructor_id'], ['instructors.id'], name=op.f('fk_membership_pool_shares_instructor_id_instructors')),
    sa.ForeignKeyConstraint(['pool_id'], ['membership_pools.id'], name=op.f('fk_membership_pool_shares_pool_id_membership_pools')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_membership_pool_shares')),
    sa.UniqueConstraint('pool_id', 'course_id', 'instructor_id', name=op.f('uq_membership_pool_shares_pool_id_course_id_instructor_id'))
    )
    with op.batch_alter_table('membership_pool_shares', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_membership_pool_shares_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_membership_pool_shares_instructor_id'), ['instructor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_membership_pool_shares_pool_id'), ['pool_id'], unique=False)

    with op.batch_alter_table('cart_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bundle_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_cart_items_bundle_id_bundles'), 'bundles', ['bundle_id'], ['id'])

    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bundle_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_order_lines_bundle_id'), ['bundle_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_order_lines_bundle_id_bundles'), 'bundles', ['bundle_id'], ['id'])



def downgrade():
    sold = op.get_bind().execute(sa.text(
        "SELECT (SELECT count(*) FROM orders WHERE kind = 'membership')"
        " + (SELECT count(*) FROM order_lines WHERE bundle_id IS NOT NULL)"
    )).scalar()
    if sold:
        # The old schema cannot say what a line-less order bought or why a line's price
        # is a part of a bundle's: their journal entries would be left unexplained.
        raise RuntimeError('refusing to downgrade: memberships or bundles were sold')
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_order_lines_bundle_id_bundles'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_order_lines_bundle_id'))
        batch_op.drop_column('bundle_id')

    with op.batch_alter_table('cart_items', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_cart_items_bundle_id_bundles'), type_='foreignkey')
        batch_op.drop_column('bundle_id')

    with op.batch_alter_table('membership_pool_shares', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_membership_pool_shares_pool_id'))
        batch_op.drop_index(batch_op.f('ix_membership_pool_shares_instructor_id'))
        batch_op.drop_index(batch_op.f('ix_membership_pool_shares_entry_id'))

    op.drop_table('membership_pool_shares')
    op.drop_table('membership_pools')
    op.drop_table('bundle_courses')
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_memberships_user_id'))
        batch_op.drop_index(batch_op.f('ix_memberships_starts_at'))
        batch_op.drop_index(batch_op.f('ix_memberships_plan_id'))
        batch_op.drop_index(batch_op.f('ix_memberships_ends_at'))

    op.drop_table('memberships')
    op.drop_table('membership_plans')
    op.drop_table('bundles')
    _order_kinds("kind IN ('course', 'topup')")
