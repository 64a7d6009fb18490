"""How a callback is stored and its payment booked, in as few statements as they need:
the inbox row goes in by one INSERT … SELECT … ON CONFLICT DO NOTHING (no savepoint),
and the job reads the inbox row with its attempt, then the order with its lines once."""
from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from app.accounts.services import create_user
from app.catalog.models import Enrollment
from app.checkout.models import Order
from app.extensions import db
from app.jobs import enqueue
from app.jobs.tasks import process_notification
from app.payments import refund_workflow, services
from app.payments.channels.base import Notification, TradeState
from app.payments.models import InboxNotification, PaymentAttempt, Refund, RejectedNotification
from tests.alipay_oracle import notification_fields, signed_body
from tests.helpers import (
    attempt_of, checkout, login, make_course, make_learner, pay_at_emulator, recorded_statements, without_begin,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def pending_order(app: Flask, client, courses: int = 1) -> tuple[str, str]:
    with app.app_context():
        course_ids = [make_course(10000, slug=f"c{number}") for number in range(courses)]
        make_learner()
    login(client)
    order_no = checkout(client, course_ids)
    with app.app_context():
        return order_no, attempt_of(order_no).out_trade_no


def test_a_new_callback_is_stored_by_one_statement_and_no_savepoint(app, client, queued) -> None:
    _, out_trade_no = pending_order(app, client)
    body = signed_body(notification_fields(out_trade_no, 10000))
    with recorded_statements(app) as seen:
        assert client.post("/notify/alipay", data=body, headers=FORM).text == "success"
    [insert] = without_begin(seen)
    assert insert.startswith("INSERT INTO notification_inbox") and "ON CONFLICT" in insert

    # Delivered again: nothing goes in; the attempt is checked and the delivery counted.
    with recorded_statements(app) as seen:
        assert client.post("/notify/alipay", data=body, headers=FORM).text == "success"
    assert [statement.split()[0] for statement in without_begin(seen)] == ["INSERT", "SELECT", "UPDATE"]
    assert not any("SAVEPOINT" in statement for statement in seen)
    with app.app_context():
        row = db.session.scalar(select(InboxNotification))
        attempt_id = db.session.scalar(
            select(PaymentAttempt.id).where(PaymentAttempt.out_trade_no == out_trade_no)
        )
        assert (row.deliveries, row.status, row.attempt_id) == (2, "received", attempt_id)


def test_on_postgresql_a_new_callback_commits_by_itself(app, client, is_postgres) -> None:
    """The one INSERT runs in autocommit (no BEGIN and COMMIT round trips around it): it
    is stored before the view commits its session, whatever that session does."""
    if not is_postgres:
        pytest.skip("SQLite stores it in the caller's transaction, which holds its write lock")
    _, out_trade_no = pending_order(app, client)
    notification = Notification(
        channel="alipay", notify_id="n-autocommit", out_trade_no=out_trade_no, channel_trade_no="2026112422001",
        state=TradeState.PAID, amount_fen=10000, currency="CNY", paid_at=None, raw={},
    )
    with app.app_context():
        stored = services.store_notification(notification, "body")
        db.session.rollback()  # the caller's session gives up: the row stays all the same
        assert stored.is_new
        assert db.session.get(InboxNotification, stored.inbox_id).dedupe_key == "alipay:n-autocommit"


def test_a_callback_for_another_amount_stores_nothing_and_says_why(app, client, queued) -> None:
    # The INSERT … SELECT finds no matching attempt; the reason comes from the attempt.
    _, out_trade_no = pending_order(app, client)
    body = signed_body(notification_fields(out_trade_no, 10001))
    assert client.post("/notify/alipay", data=body, headers=FORM).text == "failure"
    with app.app_context():
        assert db.session.scalar(select(InboxNotification.id)) is None
        assert "amount 10001 does not match attempt 10000" in db.session.scalar(
            select(RejectedNotification.reason)
        )


@pytest.mark.parametrize("courses", [1, 3])
def test_the_job_reads_the_inbox_row_the_learners_enrollments_and_the_order_once_each(
    app, client, queued, courses
) -> None:
    order_no, out_trade_no = pending_order(app, client, courses)
    body = signed_body(notification_fields(out_trade_no, 10000 * courses))
    assert client.post("/notify/alipay", data=body, headers=FORM).text == "success"
    with app.app_context():
        inbox_id = db.session.scalar(select(InboxNotification.id))
        with recorded_statements(app) as seen:
            assert process_notification(inbox_id) == "paid"
        reads = [statement for statement in seen if statement.startswith("SELECT")]
        # The inbox row with its attempt; the learner's enrollments in the order's courses
        # (owned already? to grant? still held, for a renewal?); the order with its lines
        # and shares; the learner's address and the courses' titles for the order
        # confirmation (app/mail); the paying
        # attempt with the learner's address for the receipt (app/receipts); the enabled
        # platform endpoints, once per transaction (app/platform_events). None grows with
        # the number of courses.
        assert len(reads) == 6, reads
        assert db.session.scalar(select(Order.status).where(Order.order_no == order_no)) == "paid"


def test_a_course_refunded_then_bought_again_is_granted_again_by_the_new_order(app, client) -> None:
    with app.app_context():
        course_id = make_course(10000)
        make_learner()
        support = create_user("support@example.com", "staff-password", "Support", role="support")
        db.session.commit()
    login(client)
    first = checkout(client, [course_id])
    with app.app_context():
        pay_at_emulator(app, attempt_of(first).qr_code)
        order = db.session.scalar(select(Order).where(Order.order_no == first))
        refund_id = refund_workflow.request_refund(order.id, order.user_id, None, "changed my mind")
        db.session.commit()
        assert refund_workflow.approve_refund(refund_id, support, "policy ok") == "approved"
        db.session.commit()
        enqueue("execute_refund", refund_id)
        assert db.session.get(Refund, refund_id).status == "succeeded"
        assert db.session.scalar(select(Enrollment.revoked_at)) is not None

    second = checkout(client, [course_id])
    with app.app_context():
        pay_at_emulator(app, attempt_of(second).qr_code)
        second_id = db.session.scalar(select(Order.id).where(Order.order_no == second))
        [enrollment] = db.session.scalars(select(Enrollment)).all()
        assert (enrollment.revoked_at, enrollment.order_id) == (None, second_id)
