"""earnings: commission rules, shares, fees, payouts, statements

Revision ID: 0cc5f68cd03b
Revises: 8f2a1876d696
Create Date: 2026-11-23 22:24:23.887652

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0cc5f68cd03b'
down_revision = '8f2a1876d696'
branch_labels = None
depends_on = None

# History tables: the same append-only guard app/database.py installs on create_all.
APPEND_ONLY = ('statements', 'statement_lines', 'statement_entries')
# Rates that existed before rules took effect from a moment: in force since long ago.
LEGACY_RULES_FROM = '2000-01-01 00:00:00'


def _recreate_on_sqlite():
    # SQLite changes CHECK constraints only by copying the table; PostgreSQL alters in place.
    return 'always' if op.get_bind().dialect.name == 'sqlite' else 'auto'


def _refuse_losing_earnings():
    """The old schema has one instructor per line and no maturity or payouts: past
    co-authored sales, releases or payouts would leave entries the old code reverses
    wrongly. Refuse rather than lose them."""
    bind = op.get_bind()
    kept = bind.exec_driver_sql(
        "SELECT (SELECT COUNT(*) FROM order_line_shares WHERE weight_total > 1)"
        " + (SELECT COUNT(*) FROM journal_entries WHERE kind IN ('release', 'payout', 'adjustment'))"
    ).scalar()
    if kept:
        raise RuntimeError(
            'this database has co-authored sales, released earnings, payouts or adjustments; '
            'downgrading would misstate them, so restore a backup taken before the upgrade instead'
        )


def _append_only_statements(table):
    if op.get_bind().dialect.name == 'sqlite':
        return (
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
        )
    return (
        f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$ "
        f"BEGIN RAISE EXCEPTION '{table} is append-only'; END; $$ LANGUAGE plpgsql",
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()",
    )


def _move_rates_into_rules():
    """The old rate columns become rules, and every sold line gets its one-author share
    exactly as the ledger computed it (rate × net, half up), before the columns go."""
    op.execute(
        "INSERT INTO commission_rules (instructor_id, course_id, rate_bps, effective_from, reason, created_at) "
        f"SELECT id, NULL, commission_bps, '{LEGACY_RULES_FROM}', 'rate before commission rules', "
        f"'{LEGACY_RULES_FROM}' FROM instructors"
    )
    op.execute(
        "INSERT INTO commission_rules (instructor_id, course_id, rate_bps, effective_from, reason, created_at) "
        f"SELECT NULL, id, commission_bps, '{LEGACY_RULES_FROM}', 'rate before commission rules', "
        f"'{LEGACY_RULES_FROM}' FROM courses WHERE commission_bps IS NOT NULL"
    )
    op.execute(
        "INSERT INTO order_line_shares (order_line_id, instructor_id, weight, weight_total, share_fen) "
        # BIGINT: a 32-bit product overflows on PostgreSQL from about ¥3,000 at 70 %.
        "SELECT id, instructor_id, 1, 1, (CAST(amount_fen - tax_fen AS BIGINT) * commission_bps + 5000) / 10000 "
        "FROM order_lines"
    )


def upgrade():
    op.create_table('payout_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('minimum_fen', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('exported_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint('minimum_fen > 0', name=op.f('ck_payout_batches_minimum_fen')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_payout_batches_created_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_batches'))
    )
    op.create_table('instructor_bank_accounts',
    sa.Column('instructor_id', sa.Integer(), nullable=False),
    sa.Column('account_holder', sa.String(length=80), nullable=False),
    sa.Column('bank_name', sa.String(length=80), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('ciphertext', sa.Text(), nullable=False),
    sa.Column('last4', sa.String(length=4), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['instructor_id'], ['instructors.id'], name=op.f('fk_instructor_bank_accounts_instructor_id_instructors')),
    sa.PrimaryKeyConstraint('instructor_id', name=op.f('pk_instructor_bank_accounts'))
    )
    op.create_table('payouts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('instructor_id', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('account_holder', sa.String(length=80), nullable=False),
    sa.Column('bank_name', sa.String(length=80), nullable=False),
    sa.Column('account_key_id', sa.String(length=16), nullable=False),
    sa.Column('account_ciphertext', sa.Text(), nullable=False),
    sa.Column('account_last4', sa.String(length=4), nullable=False),
    sa.Column('bank_reference', sa.String(length=64), nullable=True),
    sa.Column('settled_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'paid', 'failed')", name=op.f('ck_payouts_status')),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_payouts_amount_fen')),
    sa.ForeignKeyConstraint(['batch_id'], ['payout_batches.id'], name=op.f('fk_payouts_batch_id_payout_batches')),
    sa.ForeignKeyConstraint(['instructor_id'], ['instructors.id'], name=op.f('fk_payouts_instructor_id_instructors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payouts')),
    sa.UniqueConstraint('batch_id', 'instructor_id', name=op.f('uq_payouts_batch_id_instructor_id'))
    )
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payouts_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payouts_instructor_id'), ['instructor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payouts_status'), ['status'], unique=False)

    op.create_table('statements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instructor_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('instructor_name', sa.String(length=80), nullable=False),
    sa.Column('opening_fen', sa.Integer(), nullable=False),
    sa.Column('sales_fen', sa.Integer(), nullable=False),
    sa.Column('refunds_fen', sa.Integer(), nullable=False),
    sa.Column('adjustments_fen', sa.Integer(), nullable=False),
    sa.Column('payouts_fen', sa.Integer(), nullable=False),
    sa.Column('closing_fen', sa.Integer(), nullable=False),
    sa.Column('pending_fen', sa.Integer(), nullable=False),
    sa.Column('available_fen', sa.Integer(), nullable=False),
    sa.Column('rule_text', sa.Text(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['instructor_id'], ['instructors.id'], name=op.f('fk_statements_instructor_id_instructors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statements')),
    sa.UniqueConstraint('instructor_id', 'period', name=op.f('uq_statements_instructor_id_period'))
    )
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_statements_instructor_id'), ['instructor_id'], unique=False)

    op.create_table('commission_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instructor_id', sa.Integer(), nullable=True),
    sa.Column('course_id', sa.Integer(), nullable=True),
    sa.Column('rate_bps', sa.Integer(), nullable=False),
    sa.Column('effective_from', sa.DateTime(), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint('(instructor_id IS NULL) <> (course_id IS NULL)', name=op.f('ck_commission_rules_one_scope')),
    sa.CheckConstraint('rate_bps BETWEEN 0 AND 10000', name=op.f('ck_commission_rules_rate_bps')),
    sa.ForeignKeyConstraint(['course_id'], ['courses.id'], name=op.f('fk_commission_rules_course_id_courses')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_commission_rules_created_by_users')),
    sa.ForeignKeyConstraint(['instructor_id'], ['instructors.id'], name=op.f('fk_commission_rules_instructor_id_instructors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_rules'))
    )
    with op.batch_alter_table('commission_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commission_rules_course_id'), ['course_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_commission_rules_effective_from'), ['effective_from'], unique=False)
        batch_op.create_index(batch_op.f('ix_commission_rules_instructor_id'), ['instructor_id'], unique=False)

    op.create_table('course_authors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('instructor_id', sa.Integer(), nullable=False),
    sa.Column('weight', sa.Integer(), nullable=False),
    sa.CheckConstraint('weight > 0', name=op.f('ck_course_authors_weight')),
    sa.ForeignKeyConstraint(['course_id'], ['courses.id'], name=op.f('fk_course_authors_course_id_courses')),
    sa.ForeignKeyConstraint(['instructor_id'], ['instructors.id'], name=op.f('fk_course_authors_instructor_id_instructors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_course_authors')),
    sa.UniqueConstraint('course_id', 'instructor_id', name=op.f('uq_course_authors_course_id_instructor_id'))
    )
    with op.batch_alter_table('course_authors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_course_authors_course_id'), ['course_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_course_authors_instructor_id'), ['instructor_id'], unique=False)

    op.create_table('statement_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('instructor_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['journal_entries.id'], name=op.f('fk_statement_entries_entry_id_journal_entries')),
    sa.ForeignKeyConstraint(['instructor_id'], ['instructors.id'], name=op.f('fk_statement_entries_instructor_id_instructors')),
    sa.ForeignKeyConstraint(['statement_id'], ['statements.id'], name=op.f('fk_statement_entries_statement_id_statements')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statement_entries')),
    sa.UniqueConstraint('instructor_id', 'entry_id', name=op.f('uq_statement_entries_instructor_id_entry_id'))
    )
    with op.batch_alter_table('statement_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_statement_entries_statement_id'), ['statement_id'], unique=False)

    op.create_table('statement_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('instructor_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('order_no', sa.String(length=32), nullable=True),
    sa.Column('course_title', sa.String(length=120), nullable=True),
    sa.Column('amount_fen', sa.Integer(), nullable=True),
    sa.Column('tax_fen', sa.Integer(), nullable=True),
    sa.Column('fee_fen', sa.Integer(), nullable=True),
    sa.Column('rate_bps', sa.Integer(), nullable=True),
    sa.Column('weight_note', sa.String(length=20), nullable=True),
    sa.Column('share_fen', sa.Integer(), nullable=False),
    sa.Column('memo', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['journal_entries.id'], name=op.f('fk_statement_lines_entry_id_journal_entries')),
    sa.ForeignKeyConstraint(['instructor_id'], ['instructors.id'], name=op.f('fk_statement_lines_instructor_id_instructors')),
    sa.ForeignKeyConstraint(['statement_id'], ['statements.id'], name=op.f('fk_statement_lines_statement_id_statements')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statement_lines'))
    )
    with op.batch_alter_table('statement_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_statement_lines_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_statement_lines_instructor_id'), ['instructor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_statement_lines_statement_id'), ['statement_id'], unique=False)

    op.create_table('order_line_shares',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_line_id', sa.Integer(), nullable=False),
    sa.Column('instructor_id', sa.Integer(), nullable=False),
    sa.Column('weight', sa.Integer(), nullable=False),
    sa.Column('weight_total', sa.Integer(), nullable=False),
    sa.Column('share_fen', sa.Integer(), nullable=False),
    sa.CheckConstraint('share_fen >= 0', name=op.f('ck_order_line_shares_share_fen')),
    sa.CheckConstraint('weight > 0', name=op.f('ck_order_line_shares_weight')),
    sa.ForeignKeyConstraint(['instructor_id'], ['instructors.id'], name=op.f('fk_order_line_shares_instructor_id_instructors')),
    sa.ForeignKeyConstraint(['order_line_id'], ['order_lines.id'], name=op.f('fk_order_line_shares_order_line_id_order_lines')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_line_shares')),
    sa.UniqueConstraint('order_line_id', 'instructor_id', name=op.f('uq_order_line_shares_order_line_id_instructor_id'))
    )
    with op.batch_alter_table('order_line_shares', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_line_shares_instructor_id'), ['instructor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_order_line_shares_order_line_id'), ['order_line_id'], unique=False)

    for table in APPEND_ONLY:
        for statement in _append_only_statements(table):
            op.execute(statement)

    _move_rates_into_rules()
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_courses_commission_bps'), type_='check')
        batch_op.drop_column('commission_bps')

    with op.batch_alter_table('instructors', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_instructors_commission_bps'), type_='check')
        batch_op.drop_column('commission_bps')

    with op.batch_alter_table('payment_attempts', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.add_column(sa.Column('fee_fen', sa.Integer(), nullable=True))
        batch_op.create_check_constraint(batch_op.f('ck_payment_attempts_fee_fen'), 'fee_fen >= 0')

    with op.batch_alter_table('refunds', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.add_column(sa.Column('fee_fen', sa.Integer(), nullable=True))
        batch_op.create_check_constraint(batch_op.f('ck_refunds_fee_fen'), 'fee_fen >= 0')



def downgrade():
    _refuse_losing_earnings()
    with op.batch_alter_table('refunds', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_refunds_fee_fen'), type_='check')
        batch_op.drop_column('fee_fen')

    with op.batch_alter_table('payment_attempts', schema=None, recreate=_recreate_on_sqlite()) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_payment_attempts_fee_fen'), type_='check')
        batch_op.drop_column('fee_fen')

    with op.batch_alter_table('instructors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('commission_bps', sa.INTEGER(), nullable=False, server_default='7000'))
        batch_op.create_check_constraint(batch_op.f('ck_instructors_commission_bps'), 'commission_bps BETWEEN 0 AND 10000')

    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('commission_bps', sa.INTEGER(), nullable=True))
        batch_op.create_check_constraint(
            batch_op.f('ck_courses_commission_bps'), 'commission_bps IS NULL OR commission_bps BETWEEN 0 AND 10000')

    # The rule in force now becomes the column again; rules scheduled for later are lost.
    utc_now = "CURRENT_TIMESTAMP" if op.get_bind().dialect.name == 'sqlite' else "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"
    in_force = f"r.withdrawn_at IS NULL AND r.effective_from <= {utc_now}"
    for table, scope in (('instructors', 'instructor_id'), ('courses', 'course_id')):
        op.execute(
            f"UPDATE {table} SET commission_bps = (SELECT r.rate_bps FROM commission_rules r "
            f"WHERE r.{scope} = {table}.id AND {in_force} "
            "ORDER BY r.effective_from DESC, r.id DESC LIMIT 1) "
            f"WHERE EXISTS (SELECT 1 FROM commission_rules r WHERE r.{scope} = {table}.id AND {in_force})"
        )

    with op.batch_alter_table('order_line_shares', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_line_shares_order_line_id'))
        batch_op.drop_index(batch_op.f('ix_order_line_shares_instructor_id'))

    op.drop_table('order_line_shares')
    with op.batch_alter_table('statement_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_statement_lines_statement_id'))
        batch_op.drop_index(batch_op.f('ix_statement_lines_instructor_id'))
        batch_op.drop_index(batch_op.f('ix_statement_lines_entry_id'))

    op.drop_table('statement_lines')
    with op.batch_alter_table('statement_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_statement_entries_statement_id'))

    op.drop_table('statement_entries')
    with op.batch_alter_table('course_authors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_course_authors_instructor_id'))
        batch_op.drop_index(batch_op.f('ix_course_authors_course_id'))

    op.drop_table('course_authors')
    with op.batch_alter_table('commission_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commission_rules_instructor_id'))
        batch_op.drop_index(batch_op.f('ix_commission_rules_effective_from'))
        batch_op.drop_index(batch_op.f('ix_commission_rules_course_id'))

    op.drop_table('commission_rules')
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_statements_instructor_id'))

    op.drop_table('statements')
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payouts_status'))
        batch_op.drop_index(batch_op.f('ix_payouts_instructor_id'))
        batch_op.drop_index(batch_op.f('ix_payouts_batch_id'))

    op.drop_table('payouts')
    op.drop_table('instructor_bank_accounts')
    op.drop_table('payout_batches')
    if op.get_bind().dialect.name == 'postgresql':
        for table in APPEND_ONLY:
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
