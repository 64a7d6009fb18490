"""Asking the channel about an attempt the bill has as paid (`runs.recheck_attempt`, the
back office's "Ask the channel"): what it settles, what it leaves for staff, and the
outcome written where staff see it. Every path moves money, so each runs on SQLite and
PostgreSQL like the rest of the suite."""
from __future__ import annotations

from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.catalog.models import Enrollment
from app.checkout.models import Order
from app.extensions import db
from app.jobs import enqueue
from app.ledger.models import JournalEntry
from app.payments.models import OrphanPayment, PaymentAttempt, Refund
from app.reconciliation.models import Discrepancy
from app.reconciliation.runs import recheck_attempt
from tests.admin import conftest as back_office
from tests.conftest import Clock
from tests.helpers import attempt_of, pay_at_emulator
from tests.reconciliation_helpers import (CHANNELS, DAY, D, attempt_row, edit_attempt, found, pay, reconcile,
                                          refund_at_channel, set_beijing, utc_of)

# The back office's fixtures: staff of each role, clients logged in as them, a learner.
staff = back_office.staff
client_as = back_office.client_as
learner = back_office.learner


@pytest.fixture
def shopper(app: Flask, learner: int, client_as: Callable[[str], FlaskClient]) -> FlaskClient:
    return client_as("learner")


def paid_but_closed_here(app: Flask, clock: Clock, shopper: FlaskClient, channel: str, status: str = "closed",
                         price_fen: int = 10000) -> str:
    """Paid at the channel at noon on D, its callback lost, and ``status`` here (our
    close raced the payer, or we marked it failed)."""
    set_beijing(clock, D, 12)
    trade_no = pay(app, shopper, channel, price_fen, drop_notify=True)
    edit_attempt(app, trade_no, status=status, closed_at=utc_of(D, 12, 1), next_query_at=None)
    return trade_no


def money_rows(app: Flask) -> tuple[int, int, int, int]:
    """How many orphan payments, refunds, journal entries and enrollments there are."""
    with app.app_context():
        return tuple(db.session.scalar(select(func.count(model.id)))  # type: ignore[return-value]
                     for model in (OrphanPayment, Refund, JournalEntry, Enrollment))


def ask(app: Flask, trade_no: str) -> str:
    """The job "Ask the channel" enqueues (inline here), with its follow-up refund."""
    with app.app_context():
        enqueue("recheck_attempt", attempt_row(app, trade_no).id)
    return outcome_of(app, trade_no)


def outcome_of(app: Flask, trade_no: str) -> str:
    with app.app_context():
        attempt_id = attempt_row(app, trade_no).id
        return db.session.scalar(select(Discrepancy.last_check_outcome).where(Discrepancy.attempt_id == attempt_id))


def reconcile_found(app: Flask, clock: Clock, channel: str) -> set[tuple[str, str, str]]:
    set_beijing(clock, D + DAY, 11)
    return found(reconcile(app, channel, D))


def order_of(app: Flask, trade_no: str) -> Order:
    with app.app_context():
        order = db.session.get(Order, attempt_row(app, trade_no).order_id)
        db.session.expunge(order)
        return order


def test_closed_but_paid_while_another_attempt_paid_the_order_is_an_orphan_refunded_once(
    app: Flask, clock: Clock, shopper: FlaskClient
) -> None:
    """The learner paid the WeChat QR (callback lost, the attempt closed here), then
    switched to Alipay and paid again: the bill's WeChat payment is money the order
    cannot keep. Asking the channel books it as an orphan payment and refunds it; asking
    again changes nothing."""
    first = paid_but_closed_here(app, clock, shopper, "wechat")
    order_no = order_of(app, first).order_no
    assert shopper.post(f"/orders/{order_no}/channel", data={"channel": "alipay"}).status_code == 302
    with app.app_context():
        second_qr = attempt_of(order_no).qr_code
    pay_at_emulator(app, second_qr)
    assert order_of(app, first).status == "paid"
    assert reconcile_found(app, clock, "wechat") == {("status_mismatch", "payment", first)}
    before = money_rows(app)

    outcome = ask(app, first)
    assert outcome.startswith("orphan payment, refunding: the order was already paid by another attempt")
    with app.app_context():
        attempt = db.session.scalar(select(PaymentAttempt).where(PaymentAttempt.out_trade_no == first))
        orphan = db.session.scalar(select(OrphanPayment).where(OrphanPayment.attempt_id == attempt.id))
        refund = db.session.get(Refund, orphan.refund_id)
        assert attempt.status == "succeeded"
        assert (orphan.resolution, refund.kind, refund.status, refund.amount_fen) == (
            "refunded", "orphan", "succeeded", 10000)
    after = money_rows(app)
    # One orphan, one refund, its receipt and refund entries; no second enrollment.
    assert (after[0] - before[0], after[1] - before[1], after[3] - before[3]) == (1, 1, 0)
    assert after[2] > before[2]

    assert ask(app, first) == "nothing to ask: no such attempt, or already succeeded"
    assert money_rows(app) == after
    assert order_of(app, first).status == "paid"


def test_a_failed_attempt_the_channel_has_as_paid_is_settled(app: Flask, clock: Clock, shopper: FlaskClient) -> None:
    trade_no = paid_but_closed_here(app, clock, shopper, "alipay", status="failed")
    assert reconcile_found(app, clock, "alipay") == {("status_mismatch", "payment", trade_no)}
    assert ask(app, trade_no) == "paid"
    assert attempt_row(app, trade_no).status == "succeeded"
    assert order_of(app, trade_no).status == "paid"
    assert reconcile_found(app, clock, "alipay") == set()
    settled = money_rows(app)
    assert ask(app, trade_no).startswith("nothing to ask")  # still open for staff: the answer lands there
    assert money_rows(app) == settled


def test_a_different_amount_is_left_for_staff(app: Flask, clock: Clock, shopper: FlaskClient) -> None:
    trade_no = paid_but_closed_here(app, clock, shopper, "wechat")
    edit_attempt(app, trade_no, amount_fen=10001)
    assert reconcile_found(app, clock, "wechat") == {("amount_mismatch", "payment", trade_no)}
    before = money_rows(app)
    assert ask(app, trade_no) == "the channel has it paid for 10000 fen, not 10001: left for staff"
    assert attempt_row(app, trade_no).status == "closed"
    assert order_of(app, trade_no).status == "pending"
    assert money_rows(app) == before


def test_a_trade_the_channel_reports_refunded_is_not_settled(app: Flask, clock: Clock, shopper: FlaskClient) -> None:
    """Staff refunded the payment in WeChat Pay's merchant portal: the trade says
    REFUND, which is paid to the query, but the money is gone. Settling would grant
    the course (or refund it a second time)."""
    trade_no = paid_but_closed_here(app, clock, shopper, "wechat")
    refund_at_channel(app, "wechat", trade_no, 10000, 10000)
    before = money_rows(app)
    with app.app_context():
        settlement = recheck_attempt(attempt_row(app, trade_no).id)
    assert settlement.outcome == "the channel has it paid but reports a refund of it: not settled, left for staff"
    assert settlement.refund_id is None
    assert attempt_row(app, trade_no).status == "closed"
    assert order_of(app, trade_no).status == "pending"
    assert money_rows(app) == before


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_trade_whose_bill_shows_a_refund_we_do_not_know_is_not_settled(
    app: Flask, clock: Clock, shopper: FlaskClient, client_as: Callable[[str], FlaskClient], channel: str
) -> None:
    """Part of the payment went back through the merchant portal: the trade is still
    plainly paid to a query, but the bill has the refund, which the run reported."""
    trade_no = paid_but_closed_here(app, clock, shopper, channel)
    set_beijing(clock, D, 15)
    portal_refund = refund_at_channel(app, channel, trade_no, 3000, 10000)
    assert reconcile_found(app, clock, channel) == {("status_mismatch", "payment", trade_no),
                                                    ("missing_ours", "refund", portal_refund)}
    with app.app_context():
        refund_finding, payment_finding = (
            db.session.scalar(select(Discrepancy.id).where(Discrepancy.subject == subject))
            for subject in ("refund", "payment"))
    before = money_rows(app)

    page = client_as("finance").post(f"/admin/reconciliation/{payment_finding}/ask-channel",
                                     data={"reason": "learner says they paid"}, follow_redirects=True).text
    expected = (f"the channel has it paid, but its bill shows a refund of it we have no record of "
                f"(discrepancy #{refund_finding}): not settled, left for staff")
    assert outcome_of(app, trade_no) == expected
    assert f'id="check-outcome-text">{expected}<' in page
    assert attempt_row(app, trade_no).status == "closed"
    assert money_rows(app) == before

    # Resolving the refund's discrepancy does not make the money come back.
    client_as("finance").post(f"/admin/reconciliation/{refund_finding}/resolve",
                              data={"resolution": "accepted", "reason": "refunded in the portal by ops"})
    assert ask(app, trade_no) == expected
    assert attempt_row(app, trade_no).status == "closed"


# --- the outcome, where staff see it --------------------------------------------------


def test_the_outcome_of_asking_shows_on_the_discrepancy(
    app: Flask, clock: Clock, shopper: FlaskClient, client_as: Callable[[str], FlaskClient]
) -> None:
    trade_no = paid_but_closed_here(app, clock, shopper, "alipay", price_fen=12000)
    reconcile_found(app, clock, "alipay")
    with app.app_context():
        discrepancy_id = db.session.scalar(select(Discrepancy.id))
    finance = client_as("finance")
    assert 'id="check-outcome"' not in finance.get(f"/admin/reconciliation/{discrepancy_id}/").text
    clock.advance(minutes=5)
    page = finance.post(f"/admin/reconciliation/{discrepancy_id}/ask-channel", data={"reason": "learner paid"},
                        follow_redirects=True).text
    assert "Asked the channel; the outcome will appear here." in page
    assert 'id="check-outcome-text">paid<' in page and "The channel was asked on 2026-11-21 11:05" in page
    with app.app_context():
        row = db.session.get(Discrepancy, discrepancy_id)
        assert (row.asked_at, row.last_checked_at, row.last_check_outcome) == (clock.current, clock.current, "paid")
    assert attempt_row(app, trade_no).status == "succeeded"


def test_when_the_question_cannot_be_queued_the_page_says_no_answer_yet(
    app: Flask, clock: Clock, shopper: FlaskClient, client_as: Callable[[str], FlaskClient]
) -> None:
    """Redis unreachable: `enqueue` logs and returns. The question is audited and
    committed, but nothing was asked, and the page must not pretend otherwise."""
    trade_no = paid_but_closed_here(app, clock, shopper, "wechat")
    reconcile_found(app, clock, "wechat")
    with app.app_context():
        discrepancy_id = db.session.scalar(select(Discrepancy.id))
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    page = client_as("finance").post(f"/admin/reconciliation/{discrepancy_id}/ask-channel",
                                     data={"reason": "learner paid"}, follow_redirects=True).text
    assert "Asked the channel; the outcome will appear here." in page
    assert "no answer yet" in page and 'id="check-outcome-text"' not in page
    assert "being asked" not in page
    assert attempt_row(app, trade_no).status == "closed"
    with app.app_context():
        row = db.session.get(Discrepancy, discrepancy_id)
        assert (row.asked_at, row.last_checked_at, row.last_check_outcome) == (clock.current, None, None)
