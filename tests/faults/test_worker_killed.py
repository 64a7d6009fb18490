"""The RQ worker is killed (SIGKILL) in the middle of `process_notification`: its
transaction dies with it, and after a restart the sweeper's round has the work done
exactly once (DESIGN.md §8: the database is the source of truth, jobs are idempotent).
"""
from __future__ import annotations

import requests
import sqlalchemy as sa

from tests.e2e.test_live_purchase import buy_two_courses, pay_with_phone, wait_until_paid
from tests.faults.invariants import broken_invariants
from tests.faults.stack import FaultStack, wait_until

WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def test_worker_killed_in_the_middle_of_process_notification(fault_stack: FaultStack) -> None:
    stack = fault_stack
    with requests.Session() as browser:
        purchase = buy_two_courses(stack.site, browser)
        blocker = sa.create_engine(stack.postgres.url)
        try:
            with blocker.connect() as connection:
                # Hold the order's row: the job gets as far as marking the attempt
                # succeeded (uncommitted) and then waits to mark the order paid.
                connection.execute(
                    sa.text("SELECT id FROM orders WHERE order_no = :no FOR UPDATE"),
                    {"no": purchase.order_no},
                )
                pay_with_phone(stack.site, browser, purchase)
                wait_until(lambda: stack.value(WAITING_ON_A_LOCK) == 1,
                           "the worker's job waits on the order's row")
                assert stack.worker is not None
                stack.kill(stack.worker)
                connection.rollback()
        finally:
            blocker.dispose()

        # The half-done job left nothing behind: the inbox row waits, the attempt is open.
        assert stack.rows(
            "SELECT a.status, o.status FROM payment_attempts a JOIN orders o ON o.id = a.order_id"
            " WHERE o.order_no = :no", no=purchase.order_no,
        ) == [("created", "pending")]
        assert stack.rows("SELECT status FROM notification_inbox") == [("received",)]
        assert stack.value("SELECT count(*) FROM journal_entries") == 0

        stack.start_worker()
        assert stack.sweep(seconds_later=120)["inbox_requeued"] == 1
        wait_until_paid(stack.site, browser, purchase.order_no)

    wait_until(lambda: stack.rows("SELECT status FROM notification_inbox") == [("processed",)],
               "the inbox row is processed")
    assert stack.value("SELECT count(*) FROM journal_entries WHERE kind = 'payment'") == 1
    assert stack.value("SELECT count(*) FROM enrollments") == len(purchase.courses)
    assert broken_invariants(stack.rows) == {}
