"""access periods and renewal

A course may grant access for a number of days (NULL: for life, what every existing
course keeps) and name a renewal price (NULL: the list price). An enrollment gets its
end (NULL: lifetime, what every existing enrollment keeps) and the end date it was last
reminded of. An order line says whether it is a purchase or a renewal and snapshots the
days of access it buys. access_extensions records what each paid renewal line added, so
a refund of it takes back exactly those days.

Revision ID: d81e4b6a2c57
Revises: c2d7e5a91b38
Create Date: 2026-11-25 11:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd81e4b6a2c57'
down_revision = 'c2d7e5a91b38'
branch_labels = None
depends_on = None


def _recreate_on_sqlite():
    # SQLite changes CHECK constraints only by copying the table; PostgreSQL alters in place.
    return 'always' if op.get_bind().dialect.name == 'sqlite' else 'auto'


def upgrade():
    with op.batch_alter_table('courses', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.add_column(sa.Column('access_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('renewal_price_fen', sa.Integer(), nullable=True))
        batch_op.create_check_constraint(batch_op.f('ck_courses_renewal_price_fen'), 'renewal_price_fen >= 0')
        batch_op.create_check_constraint(batch_op.f('ck_courses_access_days'), 'access_days > 0')

    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('reminded_for_expiry', sa.DateTime(), nullable=True))

    with op.batch_alter_table('order_lines', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=10), server_default='purchase', nullable=False))
        batch_op.add_column(sa.Column('access_days', sa.Integer(), nullable=True))
        batch_op.create_check_constraint(batch_op.f('ck_order_lines_kind'), "kind IN ('purchase', 'renewal')")
        batch_op.create_check_constraint(batch_op.f('ck_order_lines_access_days'), 'access_days > 0')

    op.create_table('access_extensions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('order_line_id', sa.Integer(), nullable=False),
    sa.Column('from_at', sa.DateTime(), nullable=False),
    sa.Column('to_at', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('taken_back_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint('to_at > from_at', name=op.f('ck_access_extensions_period')),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_access_extensions_enrollment_id_enrollments')),
    sa.ForeignKeyConstraint(['order_line_id'], ['order_lines.id'], name=op.f('fk_access_extensions_order_line_id_order_lines')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_extensions')),
    sa.UniqueConstraint('order_line_id', name=op.f('uq_access_extensions_order_line_id'))
    )
    with op.batch_alter_table('access_extensions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_extensions_enrollment_id'), ['enrollment_id'], unique=False)


def downgrade():
    limited = op.get_bind().execute(sa.text(
        "SELECT (SELECT count(*) FROM enrollments WHERE expires_at IS NOT NULL)"
        " + (SELECT count(*) FROM order_lines WHERE kind <> 'purchase')"
    )).scalar()
    if limited:
        # The old schema knows only lifetime access: dropping the end dates would give
        # every time-limited learner the course for life, and leave renewals unexplained.
        raise RuntimeError('refusing to downgrade: enrollments end or renewals were sold')
    with op.batch_alter_table('access_extensions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_extensions_enrollment_id'))
    op.drop_table('access_extensions')

    with op.batch_alter_table('order_lines', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_order_lines_access_days'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_order_lines_kind'), type_='check')
        batch_op.drop_column('access_days')
        batch_op.drop_column('kind')

    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_column('reminded_for_expiry')
        batch_op.drop_column('expires_at')

    with op.batch_alter_table('courses', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_courses_access_days'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_courses_renewal_price_fen'), type_='check')
        batch_op.drop_column('renewal_price_fen')
        batch_op.drop_column('access_days')
