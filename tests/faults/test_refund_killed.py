"""A process dies while the channel is in the middle of a refund: the emulator has taken
the refund and not yet answered (its `api_timeout` fault holds the answer back) when
either our RQ worker, which is waiting for the answer, or the site process that plays
the channel, is killed. The refund must still end exactly once: the sweeper's round
sends the job again, which asks the channel first and so learns the refund was made.
"""
from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from app.accounts.services import create_user
from app.checkout.models import Order
from app.extensions import db
from app.gateway.faults import clear_faults, set_fault
from app.jobs import enqueue
from app.payments import refund_workflow
from tests.e2e.test_live_purchase import buy_two_courses, pay_with_phone, wait_until_paid
from tests.faults.invariants import broken_invariants
from tests.faults.stack import FaultStack, wait_until

CHANNEL_REFUNDS = "SELECT count(*) FROM gateway_alipay_refunds"


def ask_and_approve_a_full_refund(stack: FaultStack, order_no: str) -> int:
    """The learner asks, support approves, and the approval's job goes to the worker."""
    with stack.app.app_context():
        order = db.session.scalar(select(Order).where(Order.order_no == order_no))
        refund_id = refund_workflow.request_refund(order.id, order.user_id, None, "not for me")
        support_id = create_user("support-faults@example.com", "support-password", role="support")
        refund_workflow.approve_refund(refund_id, support_id, "inside the refund window")
        db.session.commit()
        enqueue("execute_refund", refund_id)
        db.session.remove()
    return refund_id


def hold_channel_answers(stack: FaultStack, out_trade_no: str | None) -> None:
    """The emulator commits each request on this trade, then sits on its answer
    (or, with None, stops doing so)."""
    with stack.app.app_context():
        if out_trade_no is None:
            clear_faults()
        else:
            set_fault("api_timeout", "alipay", out_trade_no)
        db.session.commit()
        db.session.remove()


@pytest.mark.parametrize("killed", ["worker", "site"])
def test_a_refund_interrupted_by_a_killed_process_ends_exactly_once(
    fault_stack: FaultStack, killed: str
) -> None:
    stack = fault_stack
    with requests.Session() as browser:
        purchase = buy_two_courses(stack.site, browser)
        pay_with_phone(stack.site, browser, purchase)
        wait_until_paid(stack.site, browser, purchase.order_no)
    out_trade_no = stack.value(
        "SELECT a.out_trade_no FROM payment_attempts a JOIN orders o ON o.id = a.order_id"
        " WHERE o.order_no = :no", no=purchase.order_no,
    )

    hold_channel_answers(stack, out_trade_no)
    refund_id = ask_and_approve_a_full_refund(stack, purchase.order_no)
    wait_until(lambda: stack.value(CHANNEL_REFUNDS) == 1, "the channel has taken the refund")
    assert stack.value("SELECT status FROM refunds WHERE id = :id", id=refund_id) == "processing"

    if killed == "worker":
        assert stack.worker is not None
        stack.kill(stack.worker)
        stack.start_worker()
    else:
        assert stack.server is not None
        stack.kill(stack.server)  # the worker's request to the channel fails with it
        stack.start_server()
    hold_channel_answers(stack, None)

    # The refund is known to have started and not known to have ended: it stays
    # processing until the next check, which asks the channel before sending anything.
    assert stack.value("SELECT status FROM refunds WHERE id = :id", id=refund_id) == "processing"
    stack.sweep(seconds_later=180)
    wait_until(
        lambda: stack.value("SELECT status FROM refunds WHERE id = :id", id=refund_id) == "succeeded",
        "the refund succeeds",
    )
    assert stack.value(CHANNEL_REFUNDS) == 1
    assert stack.value("SELECT status FROM orders WHERE order_no = :no", no=purchase.order_no) == "refunded"
    assert stack.value("SELECT count(*) FROM journal_entries WHERE kind = 'refund'") == 1
    assert stack.value(
        "SELECT tries FROM refunds WHERE id = :id", id=refund_id
    ) >= 2  # sent once, then asked about
    assert broken_invariants(stack.rows) == {}
