"""The hot paths issue a fixed, small number of SQL statements, whatever the size of the
order: the status poll, the notify view and the `process_notification` job. An N+1
(a query per order line, say) makes a five-course order cost more statements than a
one-course order, and fails here; so does a path that grows past its budget.

The budgets are the counts measured when this test was written; lowering one after an
optimisation is welcome, raising one needs a reason in the commit. (Writing it found two:
the job read each line's shares and each course's enrollment one query at a time.)
"""
from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.jobs.tasks import process_notification
from app.payments.models import InboxNotification
from tests.alipay_oracle import notification_fields, signed_body
from tests.helpers import attempt_of, checkout, login, make_course, make_learner, recorded_statements

# Measured on SQLite, which issues one statement more than PostgreSQL on each path.
# The status poll: one SELECT joining the user, the order and its attempt
# (app/checkout/status_poll.py), and on SQLite the BEGIN before it.
STATUS_POLL_BUDGET = 2
NOTIFY_VIEW_BUDGET = 5
JOB_SELECT_BUDGET = 11


def pending_orders(app: Flask, client) -> dict[int, str]:
    """A pending order of one course and one of five, by course count → order number."""
    with app.app_context():
        courses = [make_course(10000, slug=f"course-{index}") for index in range(6)]
        make_learner()
    login(client)
    return {1: checkout(client, courses[:1]), 5: checkout(client, courses[1:])}


def test_the_status_poll_costs_the_same_few_statements_for_any_order(app, client):
    orders = pending_orders(app, client)
    counted, selects = {}, {}
    for size, order_no in orders.items():
        with recorded_statements(app) as seen:
            assert client.get(f"/orders/{order_no}/status").status_code == 200
        counted[size] = len(seen)
        selects[size] = [statement for statement in seen if statement.upper().startswith("SELECT")]
    assert counted[1] == counted[5] <= STATUS_POLL_BUDGET, counted
    # The user is checked in the same statement as the order: no loader's SELECT first.
    assert len(selects[1]) == len(selects[5]) == 1, selects


def test_the_notify_view_and_its_job_cost_the_same_for_any_order(app, client, queued):
    orders = pending_orders(app, client)
    view, job = {}, {}
    for size, order_no in orders.items():
        with app.app_context():
            attempt = attempt_of(order_no)
            fields = notification_fields(attempt.out_trade_no, attempt.amount_fen, notify_id=f"n-{size}")
            body = signed_body({**fields, "trade_no": f"20261120220014{size:08d}"})
        with recorded_statements(app) as seen:
            answer = client.post("/notify/alipay", data=body,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert answer.text == "success"
        view[size] = len(seen)
        with app.app_context():
            inbox_id = db.session.scalar(select(InboxNotification.id).order_by(InboxNotification.id.desc()))
            with recorded_statements(app) as seen:
                assert process_notification(inbox_id) == "paid"
        job[size] = [statement for statement in seen if statement.upper().startswith("SELECT")]
    assert view[1] == view[5] <= NOTIFY_VIEW_BUDGET, view
    assert len(job[1]) == len(job[5]) <= JOB_SELECT_BUDGET, (len(job[1]), len(job[5]), job[5])
