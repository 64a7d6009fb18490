"""The site crashes between committing a callback and enqueueing its job: the inbox row
is in the database, the job never reached Redis, the channel got no answer. Nothing is
lost: the sweeper's round finds the row and the worker books the payment once, and the
channel's redelivery of the same callback adds nothing.

To stop the site exactly there, the test freezes its Redis (SIGSTOP): the enqueue after
the commit hangs on the socket, and the site is killed while it waits.
"""
from __future__ import annotations

import threading

import requests

from tests.alipay_oracle import notification_fields, signed_body
from tests.e2e.test_live_purchase import buy_two_courses, wait_until_paid
from tests.faults.invariants import broken_invariants
from tests.faults.stack import FaultStack, wait_until

FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def test_a_crash_between_commit_and_enqueue_loses_nothing(fault_stack: FaultStack) -> None:
    stack = fault_stack
    with requests.Session() as browser:
        purchase = buy_two_courses(stack.site, browser)
        out_trade_no, amount_fen = stack.rows(
            "SELECT out_trade_no, amount_fen FROM payment_attempts")[0]
        callback = signed_body(notification_fields(out_trade_no, amount_fen, notify_id="crash-1"))
        answers: list[object] = []

        def deliver() -> None:
            try:
                answers.append(requests.post(
                    stack.site.url("/notify/alipay"), data=callback, headers=FORM, timeout=30
                ).status_code)
            except requests.ConnectionError as error:
                answers.append(error)

        stack.redis.freeze()
        try:
            delivery = threading.Thread(target=deliver)
            delivery.start()
            wait_until(lambda: stack.rows("SELECT status FROM notification_inbox") == [("received",)],
                       "the callback is committed to the inbox")
            assert stack.server is not None
            stack.kill(stack.server)
            delivery.join(timeout=30)
        finally:
            stack.redis.thaw()
        [answer] = answers
        assert isinstance(answer, requests.ConnectionError)  # the channel heard nothing back

        stack.start_server()
        assert stack.rows("SELECT status FROM notification_inbox") == [("received",)]
        assert stack.value("SELECT status FROM orders WHERE order_no = :no",
                           no=purchase.order_no) == "pending"

        assert stack.sweep(seconds_later=120)["inbox_requeued"] == 1
        wait_until_paid(stack.site, browser, purchase.order_no)

        # Alipay never got "success", so it delivers the callback again: still one payment.
        again = requests.post(stack.site.url("/notify/alipay"), data=callback, headers=FORM, timeout=30)
        assert (again.status_code, again.text) == (200, "success")

    assert stack.rows("SELECT status, deliveries FROM notification_inbox") == [("processed", 2)]
    assert stack.value("SELECT count(*) FROM journal_entries WHERE kind = 'payment'") == 1
    assert broken_invariants(stack.rows) == {}
