"""PostgreSQL crashes and restarts while Alipay is delivering a burst of payment
callbacks. A callback the site could not store gets a failure answer, so the channel
delivers it again; a callback acknowledged with ``success`` was stored before the answer
went out; nothing is half-written; once the database is back, every payment is booked
exactly once.

The test plays Alipay itself: python-alipay-sdk signs the callbacks with the platform key
the site trusts, and several threads deliver them over and over, as a channel retrying
impatiently would, while the cluster goes down (``pg_ctl stop -m immediate``, a crash)
and comes back.
"""
from __future__ import annotations

import threading
import time
from collections import Counter

import requests

from tests.alipay_oracle import notification_fields, signed_body
from tests.e2e.test_live_purchase import buy_two_courses
from tests.faults.invariants import broken_invariants
from tests.faults.stack import FaultStack, wait_until

ORDERS = 8
DELIVERERS = 4
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
ACCEPTED = (200, "success")
UNAVAILABLE = (500, "failure")  # Alipay delivers again on anything but "success"


def signed_callbacks(stack: FaultStack) -> dict[str, bytes]:
    """One signed TRADE_SUCCESS callback per pending attempt, by out_trade_no."""
    attempts = stack.rows("SELECT out_trade_no, amount_fen FROM payment_attempts ORDER BY id")
    assert len(attempts) == ORDERS
    callbacks = {}
    for index, (out_trade_no, amount_fen) in enumerate(attempts):
        fields = notification_fields(out_trade_no, amount_fen, notify_id=f"burst-{index}")
        fields["trade_no"] = f"2026112422001400{index:06d}"
        callbacks[out_trade_no] = signed_body(fields)
    return callbacks


class Deliveries:
    """Answers per callback, from threads that keep delivering until told to stop."""

    def __init__(self, url: str, callbacks: dict[str, bytes]) -> None:
        self.url = url
        self.callbacks = callbacks
        self.answers: dict[str, Counter] = {key: Counter() for key in callbacks}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        # The callbacks being delivered now: the test adds the rest during the outage,
        # so some reach the site for the first time while the database is down.
        self.due = list(callbacks)[: len(callbacks) // 2]

    def deliver(self, session: requests.Session, out_trade_no: str) -> tuple[int, str]:
        response = session.post(self.url, data=self.callbacks[out_trade_no], headers=FORM, timeout=30)
        answer = (response.status_code, response.text.strip())
        with self.lock:
            self.answers[out_trade_no][answer] += 1
        return answer

    def keep_delivering(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                for out_trade_no in list(self.due):
                    self.deliver(session, out_trade_no)

    def count(self, out_trade_no: str, answer: tuple[int, str]) -> int:
        with self.lock:
            return self.answers[out_trade_no][answer]

    def acknowledged(self) -> set[str]:
        with self.lock:
            return {key for key, seen in self.answers.items() if seen[ACCEPTED]}

    def all_answers(self) -> Counter:
        with self.lock:
            return sum(self.answers.values(), Counter())


def test_postgres_crash_during_a_callback_burst_loses_and_doubles_nothing(
    fault_stack: FaultStack,
) -> None:
    stack = fault_stack
    for _ in range(ORDERS):
        with requests.Session() as browser:
            buy_two_courses(stack.site, browser)
    deliveries = Deliveries(stack.site.url("/notify/alipay"), signed_callbacks(stack))
    first_during_outage = list(deliveries.callbacks)[ORDERS // 2:]

    threads = [threading.Thread(target=deliveries.keep_delivering) for _ in range(DELIVERERS)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: sum(deliveries.all_answers().values()) >= ORDERS, "the burst is under way")
        stack.postgres.stop("immediate")
        with deliveries.lock:
            deliveries.due = list(deliveries.callbacks)
        # Deliveries keep arriving while the database is gone, until each of the new
        # callbacks has been turned away at least once.
        wait_until(lambda: all(deliveries.count(key, UNAVAILABLE) for key in first_during_outage),
                   "every new callback was answered while the database was down")
        stack.postgres.start()
        time.sleep(0.5)  # and go on arriving as it comes back
    finally:
        deliveries.stop.set()
        for thread in threads:
            thread.join(timeout=60)

    answers = deliveries.all_answers()
    assert answers[UNAVAILABLE] > 0, answers  # the crash was felt
    assert set(answers) <= {ACCEPTED, UNAVAILABLE}, answers
    # No acknowledgement without the row behind it: what was answered "success" is stored.
    stored = {key for (key,) in stack.rows("SELECT out_trade_no FROM notification_inbox")}
    assert deliveries.acknowledged() <= stored, (deliveries.answers, stored)

    # The channel's later retries: each callback until it is acknowledged.
    with requests.Session() as session:
        for out_trade_no in deliveries.callbacks:
            wait_until(lambda key=out_trade_no: deliveries.deliver(session, key) == ACCEPTED,
                       f"the site accepts the callback of {out_trade_no}")
    # Jobs that failed while the database was down are found again by the sweeper.
    stack.sweep(seconds_later=120)
    wait_until(
        lambda: stack.value("SELECT count(*) FROM orders WHERE status = 'paid'") == ORDERS,
        "every order is paid",
    )
    wait_until(
        lambda: stack.value("SELECT count(*) FROM notification_inbox WHERE status = 'processed'")
        == ORDERS,
        "every inbox row is processed",
    )
    assert stack.value("SELECT count(*) FROM notification_inbox") == ORDERS
    assert stack.value("SELECT count(*) FROM journal_entries WHERE kind = 'payment'") == ORDERS
    assert stack.value("SELECT count(*) FROM payment_attempts WHERE status = 'succeeded'") == ORDERS
    assert stack.value("SELECT count(*) FROM orphan_payments") == 0
    assert broken_invariants(stack.rows) == {}
