"""prepaid balance

Top-ups are orders of their own kind (orders.kind, and the bonus a top-up earns), and an
order records what the prepaid balance paid of it, paid money and bonus apart. A refund
records the part that goes back to the balance; a refund of an order the balance paid
alone has no payment attempt, so refunds.attempt_id may be empty. The balance itself is
journal postings (learner:<id>:wallet, learner:<id>:wallet_bonus): no table of its own.
A receipt may now be of kind ``balance``: the payment of an order by the balance alone,
which has no payment attempt to name it.

SQLite changes CHECK constraints and nullability only by copying the table (batch mode,
recreate always); PostgreSQL alters in place.

Revision ID: c2d7e5a91b38
Revises: 3f9a6c2e8d15
Create Date: 2026-11-24 17:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c2d7e5a91b38'
down_revision = '3f9a6c2e8d15'
branch_labels = None
depends_on = None


def _recreate_on_sqlite():
    return 'always' if op.get_bind().dialect.name == 'sqlite' else 'auto'


RECEIPT_KINDS_BEFORE = "kind IN ('payment', 'refund')"
RECEIPT_KINDS = "kind IN ('payment', 'balance', 'refund')"


def _receipt_kinds(check):
    """Swap the receipts' kind CHECK. SQLite copies the table to do it, and the copy
    loses the triggers that keep receipts append-only, so they are made again."""
    sqlite = op.get_bind().dialect.name == 'sqlite'
    with op.batch_alter_table('receipts', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_receipts_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_receipts_kind'), check)
    if sqlite:
        for verb in ('UPDATE', 'DELETE'):
            op.execute(f"CREATE TRIGGER receipts_no_{verb.lower()} BEFORE {verb} ON receipts "
                       "BEGIN SELECT RAISE(ABORT, 'receipts is append-only'); END")


def upgrade():
    with op.batch_alter_table('orders', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=10), nullable=False, server_default='course'))
        batch_op.add_column(sa.Column('wallet_paid_fen', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('wallet_bonus_fen', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('topup_bonus_fen', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_check_constraint(batch_op.f('ck_orders_kind'), "kind IN ('course', 'topup')")
        batch_op.create_check_constraint(
            batch_op.f('ck_orders_wallet_fen'),
            'wallet_paid_fen >= 0 AND wallet_bonus_fen >= 0 AND wallet_paid_fen + wallet_bonus_fen <= total_fen')
        batch_op.create_check_constraint(batch_op.f('ck_orders_topup_bonus_fen'), 'topup_bonus_fen >= 0')

    with op.batch_alter_table('refunds', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.add_column(sa.Column('wallet_paid_fen', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('wallet_bonus_fen', sa.Integer(), nullable=False, server_default='0'))
        batch_op.alter_column('attempt_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_check_constraint(
            batch_op.f('ck_refunds_wallet_fen'),
            'wallet_paid_fen >= 0 AND wallet_bonus_fen >= 0 AND wallet_paid_fen + wallet_bonus_fen <= amount_fen')

    _receipt_kinds(RECEIPT_KINDS)


def downgrade():
    bind = op.get_bind()
    balance_refunds = bind.execute(sa.text(
        'SELECT count(*) FROM refunds WHERE attempt_id IS NULL OR wallet_paid_fen + wallet_bonus_fen > 0'
    )).scalar()
    balance_orders = bind.execute(sa.text(
        "SELECT count(*) FROM orders WHERE kind <> 'course' OR wallet_paid_fen + wallet_bonus_fen > 0"
    )).scalar()
    if balance_refunds or balance_orders:
        # The old schema cannot say what the balance paid or got back: dropping it would
        # leave journal entries no order or refund explains.
        raise RuntimeError('refusing to downgrade: orders or refunds involve the prepaid balance')
    _receipt_kinds(RECEIPT_KINDS_BEFORE)
    with op.batch_alter_table('refunds', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_refunds_wallet_fen'), type_='check')
        batch_op.alter_column('attempt_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('wallet_bonus_fen')
        batch_op.drop_column('wallet_paid_fen')

    with op.batch_alter_table('orders', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_orders_topup_bonus_fen'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_orders_wallet_fen'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_orders_kind'), type_='check')
        batch_op.drop_column('topup_bonus_fen')
        batch_op.drop_column('wallet_bonus_fen')
        batch_op.drop_column('wallet_paid_fen')
        batch_op.drop_column('kind')
