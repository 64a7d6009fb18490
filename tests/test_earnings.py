"""Instructor earnings: rates fixed at sale, co-author splits, channel fees, pending to
available after the refund window, claw-backs, payouts and monthly statements."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from app.accounts.services import create_user
from app.checkout.models import Order
from app.earnings import adjustments, payouts, statements
from app.earnings.bank_accounts import BankAccountError, open_number, save_bank_account
from app.earnings.models import BankAccount, CommissionRule, Statement, StatementLine
from app.earnings.rules import RuleError, add_rule, set_authors, withdraw_rule
from app.earnings.statement_files import statement_csv
from app.extensions import db
from app.fieldcrypto import generate_key_entry
from app.jobs.periodic import tick
from app.ledger import accounts
from app.ledger.fees import refund_fee
from app.ledger.models import JournalEntry
from app.ledger.services import balance, unbalanced_entry_ids
from app.payments.models import PaymentAttempt, Refund
from tests.earnings_helpers import make_course_of, make_instructor, owed, refund_lines, sell


@pytest.fixture
def people(app):
    """A learner and the staff the refund and payout steps need."""
    with app.app_context():
        ids = {
            "learner": create_user("ann@example.com", "correct-horse", "Ann"),
            "support": create_user("sam@example.com", "staff-password", "Sam", role="support"),
            "finance": create_user("fay@example.com", "staff-password", "Fay", role="finance"),
        }
        db.session.commit()
    return ids


def test_a_sale_books_fee_tax_and_each_co_authors_share_by_largest_remainder(app, people):
    app.config["TAX_RATE"] = __import__("decimal").Decimal("0.05")
    with app.app_context():
        lead = make_instructor("Lead", 7000)
        second = make_instructor("Second", 5000)
        course = make_course_of(lead, 10001, "co", authors=[(lead, 2), (second, 1)])
        order_id = sell(people["learner"], [course])
        order = db.session.get(Order, order_id)
        line = order.lines[0]
        # 10001 + 5 % tax = 10501 (tax 500); net 10001; 70 % = 7000.7 -> 7001, split 2:1.
        assert (line.amount_fen, line.tax_fen, line.commission_bps) == (10501, 500, 7000)
        assert [(s.instructor_id, s.share_fen) for s in line.shares] == [(lead, 4667), (second, 2334)]
        attempt = db.session.scalar(select(PaymentAttempt).where(PaymentAttempt.order_id == order_id))
        assert attempt.fee_fen == 63  # 0.6 % of 10501 = 63.006
        assert balance(accounts.channel("alipay")) == 10501 - 63
        assert balance(accounts.CHANNEL_FEES) == 63
        assert balance(accounts.TAX_PAYABLE) == -500
        assert balance(accounts.PLATFORM_REVENUE) == -(10001 - 7001)
        assert owed(lead) == (4667, 0) and owed(second) == (2334, 0)
        assert unbalanced_entry_ids() == []


def test_a_rule_applies_to_orders_placed_after_it_and_never_before(app, clock, people):
    with app.app_context():
        teacher = make_instructor("Rated", 7000)
        course = make_course_of(teacher, 10000, "rated")
        first = sell(people["learner"], [course])
        rule_id = add_rule(6000, clock.current + timedelta(days=1), people["finance"], "new contract",
                           instructor_id=teacher)
        db.session.commit()
        with pytest.raises(RuleError) as retro:
            add_rule(5000, clock.current - timedelta(seconds=1), people["finance"], "backdated",
                     instructor_id=teacher)
        assert retro.value.code == "retroactive"
        db.session.rollback()
        clock.advance(days=2)
        buyer = create_user("bob@example.com", "correct-horse", "Bob")
        second = sell(buyer, [course])
        rates = [db.session.get(Order, order_id).lines[0].commission_bps for order_id in (first, second)]
        assert rates == [7000, 6000]
        with pytest.raises(RuleError) as in_force:
            withdraw_rule(rule_id, people["finance"], "oops")
        assert in_force.value.code == "in_force"
        assert db.session.scalar(select(func.count(CommissionRule.id))) == 2


def test_a_future_rule_can_be_withdrawn_before_it_takes_effect(app, clock, people):
    with app.app_context():
        teacher = make_instructor("Rated", 7000)
        course = make_course_of(teacher, 10000, "rated")
        rule_id = add_rule(1000, clock.current + timedelta(hours=1), people["finance"], "typo",
                           course_id=course)
        withdraw_rule(rule_id, people["finance"], "typed 10 % instead of 100 %")
        db.session.commit()
        clock.advance(hours=2)
        order_id = sell(people["learner"], [course])
        assert db.session.get(Order, order_id).lines[0].commission_bps == 7000


def test_refunding_in_parts_returns_exactly_the_fee_the_payment_was_charged():
    fee, paid = 63, 10501
    parts = [3333, 3333, 3835]
    returned, before = [], 0
    for part in parts:
        returned.append(refund_fee(fee, paid, before, part))
        before += part
    assert sum(returned) == fee
    assert refund_fee(fee, paid, 0, paid) == fee


def test_a_full_refund_before_release_zeroes_every_account_including_fees(app, people):
    with app.app_context():
        teacher = make_instructor("T", 7000)
        courses = [make_course_of(teacher, price, f"c{price}") for price in (10000, 4990, 3333)]
        order_id = sell(people["learner"], courses)
        lines = [line.id for line in db.session.get(Order, order_id).lines]
        refund_lines(order_id, people["learner"], lines[:1], [people["support"]])
        refund_lines(order_id, people["learner"], lines[1:], [people["support"]])
        for account in (accounts.channel("alipay"), accounts.CHANNEL_FEES, accounts.TAX_PAYABLE,
                        accounts.PLATFORM_REVENUE, accounts.instructor_pending(teacher),
                        accounts.instructor_available(teacher)):
            assert balance(account) == 0, account
        fees = db.session.scalars(select(Refund.fee_fen).order_by(Refund.id)).all()
        attempt = db.session.scalar(select(PaymentAttempt))
        assert sum(fees) == attempt.fee_fen


def test_shares_become_available_after_the_window_except_lines_being_refunded(app, clock, people):
    with app.app_context():
        teacher = make_instructor("T", 7000)
        a, b = make_course_of(teacher, 10000, "a"), make_course_of(teacher, 20000, "b")
        order_id = sell(people["learner"], [a, b])
        line_a, line_b = db.session.get(Order, order_id).lines
        assert owed(teacher) == (21000, 0)
        clock.advance(days=6)
        tick()
        assert owed(teacher) == (21000, 0)  # the window is still open
        from app.payments import refund_workflow

        refund_id = refund_workflow.request_refund(order_id, people["learner"], [line_b.id], "no time")
        db.session.commit()
        clock.advance(days=2)
        tick()
        assert owed(teacher) == (14000, 7000)  # line b waits for its refund's outcome
        tick()
        assert db.session.scalar(select(func.count(JournalEntry.id)).where(JournalEntry.kind == "release")) == 1
        refund_workflow.reject_refund(refund_id, people["support"], "outside policy")
        db.session.commit()
        tick()
        assert owed(teacher) == (0, 21000)
        assert unbalanced_entry_ids() == []


def test_a_refund_after_release_claws_back_from_available_which_may_go_negative(app, clock, people):
    with app.app_context():
        teacher = make_instructor("T", 7000)
        course = make_course_of(teacher, 10000, "a")
        make_instructor("Other", 7000)
        order_id = sell(people["learner"], [course])
        clock.advance(days=8)
        tick()
        assert owed(teacher) == (0, 7000)
        save_bank_account(teacher, "T", "Bank", "6222020200001234567", people["finance"])
        payouts.create_batch("2026-11", 100, people["finance"])
        db.session.commit()
        assert owed(teacher) == (0, 0)
        # Operations lengthen the refund window; the released sale is refundable again.
        app.config["REFUND_WINDOW_DAYS"] = 30
        refund_lines(order_id, people["learner"], None, [people["support"]])
        assert owed(teacher) == (0, -7000)
        later = make_course_of(teacher, 20000, "b")
        buyer = create_user("bob@example.com", "correct-horse", "Bob")
        sell(buyer, [later])
        clock.advance(days=31)
        tick()
        assert owed(teacher) == (0, 14000 - 7000)  # the negative was netted
        assert unbalanced_entry_ids() == []


def test_a_payout_moves_available_to_clearing_and_the_bank_reference_settles_it(app, people):
    with app.app_context():
        teacher = make_instructor("T", 7000)
        poor = make_instructor("Poor", 7000)
        nobank = make_instructor("No bank", 7000)
        for instructor_id, amount in ((teacher, 50000), (poor, 50), (nobank, 50000)):
            adjustments.post_adjustment(instructor_id, amount, "opening balance", people["finance"], uuid.uuid4().hex)
        save_bank_account(teacher, "T", "Bank", "6222 0202 0000 1234 567", people["finance"])
        save_bank_account(poor, "P", "Bank", "6222020200009999", people["finance"])
        result = payouts.create_batch("2026-11", 10000, people["finance"])
        db.session.commit()
        assert (result.paid_instructors, result.total_fen, result.skipped_without_account) == (1, 50000, ("No bank",))
        assert owed(teacher) == (0, 0) and balance(accounts.PAYOUT_CLEARING) == -50000
        exported = payouts.export_batch(result.batch_id, people["finance"]).decode("utf-8-sig")
        assert "6222020200001234567" in exported and "500.00" in exported
        with pytest.raises(payouts.PayoutError) as twice_exported:
            payouts.export_batch(result.batch_id, people["finance"])
        assert twice_exported.value.code == "already_exported"
        payout_id = db.session.scalar(select(func.max(payouts.Payout.id)))
        with pytest.raises(payouts.PayoutError):
            payouts.mark_paid(payout_id, "REF-1", people["support"])
        payouts.mark_paid(payout_id, "REF-1", people["finance"])
        db.session.commit()
        assert balance(accounts.PAYOUT_CLEARING) == 0 and balance(accounts.PLATFORM_BANK) == -50000
        with pytest.raises(payouts.PayoutError) as twice:
            payouts.mark_paid(payout_id, "REF-2", people["finance"])
        assert twice.value.code == "not_pending"
        with pytest.raises(payouts.PayoutError) as again:
            payouts.create_batch("2026-11", 10000, people["finance"])
        assert again.value.code == "nothing_to_pay"


def test_a_returned_payout_goes_back_to_available(app, people):
    with app.app_context():
        teacher = make_instructor("T", 7000)
        adjustments.post_adjustment(teacher, 20000, "opening balance", people["finance"], uuid.uuid4().hex)
        save_bank_account(teacher, "T", "Bank", "6222020200001234567", people["finance"])
        payouts.create_batch("2026-11", 100, people["finance"])
        db.session.commit()
        payout_id = db.session.scalar(select(payouts.Payout.id))
        payouts.mark_failed(payout_id, "account closed", people["finance"])
        db.session.commit()
        assert owed(teacher) == (0, 20000) and balance(accounts.PAYOUT_CLEARING) == 0


def test_a_closed_statement_agrees_with_the_ledger_and_never_changes(app, clock, people):
    clock.current = datetime(2026, 10, 10, 2, 0)
    with app.app_context():
        teacher = make_instructor("林晓", 7000)
        course = make_course_of(teacher, 10000, "a")
        order_id = sell(people["learner"], [course])
        clock.current = datetime(2026, 11, 1, 1, 0)  # 09:00 on 1 November in Beijing
        tick()
        october = db.session.scalar(select(Statement).where(Statement.period == "2026-10"))
        # Released on 1 November, by that day's run: at October's end the share was pending.
        assert (october.closing_fen, october.pending_fen, october.available_fen) == (7000, 7000, 0)
        end_of_october = statements.period_end("2026-10")
        ledger_at_end = -sum(
            p.amount_fen for e in db.session.scalars(select(JournalEntry).where(JournalEntry.created_at < end_of_october))
            for p in e.postings if p.account in accounts.instructor_accounts(teacher)
        )
        assert october.closing_fen == ledger_at_end
        first_csv = statement_csv(statements.stored_document(october))
        # A refund granted later (the window was lengthened) lands on November's statement.
        app.config["REFUND_WINDOW_DAYS"] = 60
        refund_lines(order_id, people["learner"], None, [people["support"]])
        clock.current = datetime(2026, 12, 1, 1, 0)
        tick()
        db.session.expire_all()
        again = statement_csv(statements.stored_document(statements.find_statement(teacher, "2026-10")))
        assert again == first_csv
        november = statements.find_statement(teacher, "2026-11")
        assert (november.opening_fen, november.refunds_fen, november.closing_fen) == (7000, -7000, 0)
        assert november.available_fen == 0


def test_a_statement_row_cannot_be_rewritten(app, clock, people):
    clock.current = datetime(2026, 10, 10, 2, 0)
    with app.app_context():
        teacher = make_instructor("T", 7000)
        sell(people["learner"], [make_course_of(teacher, 10000, "a")])
        clock.current = datetime(2026, 11, 2)
        tick()
        line_id = db.session.scalar(select(StatementLine.id))
        assert line_id is not None
    for statement_sql in (f"UPDATE statement_lines SET share_fen = 1 WHERE id = {line_id}",
                          f"DELETE FROM statement_lines WHERE id = {line_id}",
                          "UPDATE statements SET closing_fen = 0"):
        with app.app_context():
            with pytest.raises(DBAPIError):
                with db.engine.begin() as connection:
                    connection.exec_driver_sql(statement_sql)


def test_rotating_the_field_key_reseals_accounts_and_pending_payouts(app, people):
    old_key, new_key = generate_key_entry("k2026a"), generate_key_entry("k2026b")
    app.config["FIELD_ENCRYPTION_KEY"] = old_key
    with app.app_context():
        teacher = make_instructor("T", 7000)
        save_bank_account(teacher, "T", "Bank", "6222020200001234567", people["finance"])
        adjustments.post_adjustment(teacher, 20000, "owed", people["finance"], uuid.uuid4().hex)
        batch = payouts.create_batch("2026-11", 100, people["finance"])  # copies the sealed number
        db.session.commit()
    app.config["FIELD_ENCRYPTION_KEY"] = new_key  # the old key forgotten too early
    app.extensions.pop("cashier.field_keyring")
    with app.app_context():
        with pytest.raises(payouts.PayoutError) as missing:
            payouts.export_batch(batch.batch_id, people["finance"])
        assert missing.value.code == "key_missing" and "k2026a" in missing.value.message
        db.session.rollback()
    app.config["FIELD_ENCRYPTION_KEY"] = f"{new_key},{old_key}"
    app.extensions.pop("cashier.field_keyring")
    result = app.test_cli_runner().invoke(args=["earnings", "rotate-keys"])
    assert result.exit_code == 0 and "2 account number(s) re-sealed under key k2026b" in result.output
    app.config["FIELD_ENCRYPTION_KEY"] = new_key  # now the old key can be dropped
    app.extensions.pop("cashier.field_keyring")
    with app.app_context():
        account = db.session.get(BankAccount, teacher)
        assert account.key_id == "k2026b"
        assert open_number(teacher, account.key_id, account.ciphertext) == "6222020200001234567"
        exported = payouts.export_batch(batch.batch_id, people["finance"]).decode("utf-8-sig")
        assert "6222020200001234567" in exported


def test_batches_made_at_the_same_moment_never_pay_the_same_money_twice(app, people):
    """Real threads against the real database: each batch locks the instructor rows
    while it reads and moves their balances."""
    import threading

    with app.app_context():
        teachers = [make_instructor(f"T{n}", 7000) for n in range(3)]
        for number, teacher in enumerate(teachers):
            adjustments.post_adjustment(teacher, 10000 * (number + 1), "opening balance", people["finance"], uuid.uuid4().hex)
            save_bank_account(teacher, "T", "Bank", f"622202020000{number:04d}", people["finance"])
        db.session.commit()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def make_batch() -> None:
        with app.app_context():
            barrier.wait(timeout=10)
            try:
                payouts.create_batch("2026-11", 100, people["finance"])
                db.session.commit()
                outcomes.append("made")
            except payouts.PayoutError as error:
                db.session.rollback()
                outcomes.append(error.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=make_batch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["made", "nothing_to_pay", "nothing_to_pay", "nothing_to_pay"]
    with app.app_context():
        assert db.session.scalar(select(func.sum(payouts.Payout.amount_fen))) == 60000
        assert [owed(teacher) for teacher in teachers] == [(0, 0)] * 3


@pytest.mark.parametrize("holder", ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)"])
def test_a_bank_account_name_that_a_spreadsheet_would_run_is_refused(app, people, holder):
    with app.app_context():
        teacher = make_instructor("T", 7000)
        with pytest.raises(BankAccountError) as refused:
            save_bank_account(teacher, holder, "Bank", "6222020200001234567", people["finance"])
        assert refused.value.code == "name"
        db.session.rollback()
        assert db.session.get(BankAccount, teacher) is None


@pytest.mark.parametrize("weight", [0, -1, 10001, 2**40])
def test_co_author_weights_are_bounded(app, people, weight):
    with app.app_context():
        lead, other = make_instructor("Lead", 7000), make_instructor("Other", 7000)
        course = make_course_of(lead, 10000, "co")
        with pytest.raises(RuleError) as refused:
            set_authors(course, [(lead, 1), (other, weight)], people["finance"], "contract")
        assert refused.value.code == "weight"
