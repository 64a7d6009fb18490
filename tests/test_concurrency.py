"""The reliability issue's concurrency claims, tested with real concurrency: real threads
released together by a barrier, each with its own test client or app context (so its own
database session and connection), against the suite's database: SQLite by default (WAL,
busy timeout, BEGIN IMMEDIATE), PostgreSQL when TEST_POSTGRES_URL is set.

Every test asserts exact outcomes, and that no thread saw an exception, a 500, a locked
database or a failed inline job (those are only logged, so the log is checked too).
"""
from __future__ import annotations

import logging
import random
import re
import threading
import traceback
from typing import Any, Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from app.accounts.models import User
from app.accounts.services import create_token
from app.cart import services as cart_services
from app.cart.models import Coupon, CouponRedemption
from app.catalog.models import Enrollment
from app.checkout.models import Order, OrderLine
from app.extensions import db
from app.jobs import enqueue
from app.jobs.periodic import tick
from app.ledger.models import JournalEntry
from app.ledger.services import unbalanced_entry_ids
from app.payments import refund_workflow
from app.payments.models import InboxNotification, PaymentAttempt, Refund, RefundLine
from app.payments.refund_workflow import RefundError
from tests.alipay_oracle import notification_fields, signed_body
from tests.helpers import attempt_of, checkout, login, make_coupon, make_course, pay_at_emulator
from tests.test_refunds import order_account_sums

PASSWORD = "correct-horse"
# A deliberately cheap hash: a hundred real logins must not spend seconds on scrypt.
CHEAP_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
JOIN_TIMEOUT = 120
# A hundred learners sign in from the tests' one address, one learner signs in on many
# clients, and one races fifty API posts: far past the rate limits, which are not what
# these tests are about (tests/test_rate_limits.py is).
pytestmark = pytest.mark.app_config(
    RATELIMIT_LOGIN_PER_ADDRESS="1000 per minute", RATELIMIT_LOGIN_PER_ACCOUNT="1000 per minute",
    RATELIMIT_QR_PER_USER="1000 per minute", RATELIMIT_API_PER_TOKEN="1000 per minute",
)


@pytest.fixture(autouse=True)
def _capture_app_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Failed inline jobs and 500s are logged at ERROR; capture them from every thread."""
    caplog.set_level(logging.WARNING)


def trouble_in_log(caplog: pytest.LogCaptureFixture, allowed: tuple[str, ...] = ()) -> list[str]:
    """Log records that betray a failure: ERROR and above, or a locked / deadlocked
    database at any level. ``allowed`` lists ERROR messages a test accepts as an outcome."""
    found = []
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        lowered = text.lower()
        if "database is locked" in lowered or "deadlock" in lowered:
            found.append(f"{record.name}: {text}")
        elif record.levelno >= logging.ERROR and not record.getMessage().startswith(allowed):
            found.append(f"{record.name}: {text}")
    return found


def run_together(count: int, work: Callable[[int], None]) -> list[str]:
    """Run ``work(index)`` in ``count`` threads released at once; the tracebacks of any
    exceptions they raised."""
    barrier = threading.Barrier(count)
    errors: list[str] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(index)
        except BaseException:  # noqa: BLE001 - reported by the caller's assert
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=run, args=(index,), name=f"racer-{index}") for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a racing thread did not finish"
    return errors


def make_users(emails: list[str], role: str = "learner") -> list[int]:
    users = [User(email=email, display_name=email.split("@")[0], role=role, password_hash=CHEAP_HASH)
             for email in emails]
    db.session.add_all(users)
    db.session.commit()
    return [user.id for user in users]


def logged_in_client(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    login(client, email, PASSWORD)
    return client


def flashes(client: FlaskClient) -> list[tuple[str, str]]:
    with client.session_transaction() as session:
        return [tuple(flash) for flash in session.get("_flashes", [])]


def count(column: Any) -> int:
    return db.session.scalar(select(func.count(column)))


# 1. A limited coupon raced by many learners -------------------------------------------

CHECKOUTS = 100
COUPON_USES = 10


def test_a_ten_use_coupon_raced_by_a_hundred_checkouts_is_redeemed_exactly_ten_times(app, caplog):
    """Through the HTTP checkout (POST /cart/checkout), each learner with their own
    client; carts and logins are set up beforehand, one by one."""
    emails = [f"learner{index:03d}@example.com" for index in range(CHECKOUTS)]
    with app.app_context():
        course_id = make_course(10000, slug="popular")
        coupon_id = make_coupon("LIMITED10", max_redemptions=COUPON_USES, per_user_limit=1)
        user_ids = make_users(emails)
        for user_id in user_ids:
            cart_services.add_course(user_id, course_id)
            cart_services.apply_coupon(user_id, "limited10")
        db.session.commit()
    clients = [logged_in_client(app, email) for email in emails]
    responses: dict[int, tuple[int, str]] = {}

    def check_out(index: int) -> None:
        response = clients[index].post("/cart/checkout", data={"channel": "alipay"})
        responses[index] = (response.status_code, response.headers.get("Location", ""))

    errors = run_together(CHECKOUTS, check_out)

    assert errors == []
    assert trouble_in_log(caplog) == []
    assert len(responses) == CHECKOUTS
    assert all(status == 302 for status, _ in responses.values()), sorted(
        {status for status, _ in responses.values()}
    )
    paid_for = {
        index: re.search(r"/orders/([A-Z0-9]+)/pay$", location)
        for index, (_, location) in responses.items()
    }
    winners = {index: match.group(1) for index, match in paid_for.items() if match}
    losers = [index for index, match in paid_for.items() if not match]
    assert len(winners) == COUPON_USES
    for index in losers:
        assert responses[index][1].endswith("/cart/"), responses[index]
        assert ("error", "This coupon has been fully used.") in flashes(clients[index])
    with app.app_context():
        coupon = db.session.get(Coupon, coupon_id)
        assert coupon.redeemed_count == COUPON_USES
        redemptions = db.session.scalars(select(CouponRedemption)).all()
        assert len(redemptions) == COUPON_USES
        assert all(redemption.released_at is None for redemption in redemptions)
        orders = db.session.scalars(select(Order)).all()
        assert sorted(order.order_no for order in orders) == sorted(winners.values())
        assert {order.user_id for order in orders} == {user_ids[index] for index in winners}
        assert {(r.user_id, r.order_id) for r in redemptions} == {(o.user_id, o.id) for o in orders}
        assert {(order.coupon_code, order.discount_fen, order.total_fen) for order in orders} == {
            ("LIMITED10", 1000, 9000)
        }
        # Each winner got a payment attempt with its QR code; nobody else got one.
        attempts = db.session.scalars(select(PaymentAttempt)).all()
        assert sorted(attempt.order_id for attempt in attempts) == sorted(order.id for order in orders)
        assert all(attempt.qr_code for attempt in attempts)
        # A refused learner keeps the cart, so they can still buy without the coupon.
        assert all(
            [item.course_id for item in cart_services.cart_for(user_ids[index]).items] == [course_id]
            for index in losers
        )


# 2. One Idempotency-Key, many racing API posts ----------------------------------------

API_POSTS = 50


def test_fifty_racing_api_posts_with_one_idempotency_key_create_exactly_one_order(app, caplog):
    """The API promises that a repeat of the same request under the same key returns the
    first order (201, same body); a conflict (422) is only for a different body."""
    with app.app_context():
        course_id = make_course(10000, slug="api")
        user_id = make_users(["app@example.com"])[0]
        token = create_token(user_id, "phone")
        db.session.commit()
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "checkout-7f3a"}
    clients = [app.test_client() for _ in range(API_POSTS)]
    answers: dict[int, tuple[int, dict]] = {}

    def create_order(index: int) -> None:
        response = clients[index].post("/api/v1/orders", json={"course_ids": [course_id]}, headers=headers)
        answers[index] = (response.status_code, response.get_json())

    errors = run_together(API_POSTS, create_order)

    assert errors == []
    assert trouble_in_log(caplog) == []
    assert len(answers) == API_POSTS
    assert {status for status, _ in answers.values()} == {201}, [
        body for status, body in answers.values() if status != 201
    ][:3]
    assert len({body["order_no"] for _, body in answers.values()}) == 1
    with app.app_context():
        order = db.session.scalar(select(Order))
        assert count(Order.id) == 1
        assert (order.user_id, order.idempotency_key, order.total_fen) == (user_id, "checkout-7f3a", 10000)
        assert count(PaymentAttempt.id) == 1
        attempt = attempt_of(order.order_no)
        assert attempt.qr_code is not None
    # Every answer names the order, and the one QR code its attempt holds.
    assert {(body["order_no"], body["qr_code"]) for _, body in answers.values()} == {
        (order.order_no, attempt.qr_code)
    }


def test_racing_api_posts_of_two_bodies_under_one_idempotency_key_create_one_order_and_refuse_the_other_body(
    app, caplog
):
    """Half the posts order one course, half another, all under one key: whichever body
    wins, its posts get that order (201) and the other body's get 422
    idempotency_conflict. (With the same body, a racing loser could also be answered by
    the reuse of the learner's waiting order; two bodies leave only the key to decide.)"""
    with app.app_context():
        course_ids = [make_course(10000, slug="first"), make_course(8000, slug="second")]
        user_id = make_users(["app@example.com"])[0]
        token = create_token(user_id, "phone")
        db.session.commit()
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "checkout-two-bodies"}
    clients = [app.test_client() for _ in range(API_POSTS)]
    answers: dict[int, tuple[int, dict]] = {}

    def create_order(index: int) -> None:
        body = {"course_ids": [course_ids[index % 2]]}
        response = clients[index].post("/api/v1/orders", json=body, headers=headers)
        answers[index] = (response.status_code, response.get_json())

    errors = run_together(API_POSTS, create_order)

    assert errors == []
    assert trouble_in_log(caplog) == []
    assert len(answers) == API_POSTS
    with app.app_context():
        assert count(Order.id) == 1
        order = db.session.scalar(select(Order))
        won = [line.course_id for line in order.lines]
        assert order.idempotency_key == "checkout-two-bodies" and len(won) == 1
        assert count(PaymentAttempt.id) == 1
    for index, (status, body) in answers.items():
        if course_ids[index % 2] == won[0]:
            assert (status, body.get("order_no")) == (201, order.order_no), body
        else:
            assert (status, body["code"]) == (422, "idempotency_conflict"), body


# 3. One Alipay callback delivered many times at once ----------------------------------

DELIVERIES = 50


def test_fifty_concurrent_deliveries_of_one_alipay_callback_book_one_payment(app, client, caplog):
    with app.app_context():
        course_id = make_course(10000, slug="callback")
        make_users(["ann@example.com"])
    login(client, "ann@example.com", PASSWORD)
    order_no = checkout(client, [course_id])
    with app.app_context():
        out_trade_no = attempt_of(order_no).out_trade_no
    body = signed_body(notification_fields(out_trade_no, 10000))
    clients = [app.test_client() for _ in range(DELIVERIES)]
    answers: dict[int, tuple[int, str]] = {}

    def deliver(index: int) -> None:
        response = clients[index].post(
            "/notify/alipay", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        answers[index] = (response.status_code, response.text)

    errors = run_together(DELIVERIES, deliver)

    assert errors == []
    # "failure" (HTTP 500, logged) is Alipay's retry answer when a delivery could not be
    # stored: acceptable, as long as it is not a locked database and one delivery counted.
    assert trouble_in_log(caplog, allowed=("could not store a verified",)) == []
    assert len(answers) == DELIVERIES
    assert set(answers.values()) <= {(200, "success"), (500, "failure")}
    accepted = list(answers.values()).count((200, "success"))
    assert accepted >= 1
    with app.app_context():
        assert db.session.scalar(
            select(func.count(PaymentAttempt.id)).where(PaymentAttempt.status == "succeeded")
        ) == 1
        assert db.session.scalar(select(Order.status).where(Order.order_no == order_no)) == "paid"
        assert count(Enrollment.id) == 1
        assert count(JournalEntry.id) == 1
        inbox = db.session.scalars(select(InboxNotification)).all()
        assert len(inbox) == 1 and inbox[0].status == "processed"
        assert inbox[0].deliveries == accepted  # every stored delivery is counted, once
        assert unbalanced_entry_ids() == []


# 4. Racing refund requests and approvals on one order ---------------------------------

WAITING = 8  # requests already waiting for support when the race starts
NEWCOMERS = 16  # learners' requests made during the race
RACERS = WAITING + NEWCOMERS
PRICES = [10000, 12000, 8000, 9000]


def approve_and_run(reason: str, support_id: int) -> str:
    """Support approves the learner's request with this reason, and the boundary then runs
    it (inline, as in the embedded mode); the outcome, or the code of the refusal."""
    refund_id = db.session.scalar(select(Refund.id).where(Refund.reason == reason))
    if refund_id is None:
        db.session.rollback()
        return "request refused"
    try:
        refund_workflow.approve_refund(refund_id, support_id, "approved in the race")
        db.session.commit()
    except RefundError as refusal:
        db.session.rollback()
        return refusal.code
    enqueue("execute_refund", refund_id)
    return "approved"


def test_racing_refund_requests_and_approvals_never_refund_more_than_was_paid(app, client, clock, caplog):
    """On one paid order of four courses, 24 racers at once: support agents approving and
    running eight requests for overlapping courses that were waiting, while sixteen of
    the learner's clients ask (through the refund page) for overlapping courses, each
    request then approved and run at once by another agent."""
    app.config["LARGE_REFUND_FEN"] = sum(PRICES)  # one approver each: no finance step here
    with app.app_context():
        course_ids = [make_course(price, slug=f"r{index}") for index, price in enumerate(PRICES)]
        learner_id = make_users(["ann@example.com"])[0]
        support_ids = make_users([f"support{index}@example.com" for index in range(RACERS)], role="support")
    login(client, "ann@example.com", PASSWORD)
    order_no = checkout(client, course_ids)
    choose = random.Random(20261120)
    with app.app_context():
        pay_at_emulator(app, attempt_of(order_no).qr_code)
        order = db.session.scalar(select(Order).where(Order.order_no == order_no))
        assert order.status == "paid"
        order_id, total_fen = order.id, order.total_fen
        line_ids = [line.id for line in order.lines]
        course_of_line = {line.id: line.course_id for line in order.lines}
        wanted = [sorted(choose.sample(line_ids, choose.randint(1, 2))) for _ in range(RACERS)]
        for index in range(WAITING):
            refund_workflow.request_refund(order_id, learner_id, wanted[index], f"racer {index}")
        db.session.commit()
    learners = {index: logged_in_client(app, "ann@example.com") for index in range(WAITING, RACERS)}
    outcomes: dict[int, str] = {}
    statuses: list[int] = []

    def ask_approve_and_run(index: int) -> None:
        reason = f"racer {index}"
        if index in learners:
            response = learners[index].post(
                f"/orders/{order_no}/refund", data={"reason": reason, "lines": [str(i) for i in wanted[index]]}
            )
            statuses.append(response.status_code)
        with app.app_context():
            try:
                outcomes[index] = approve_and_run(reason, support_ids[index])
            finally:
                db.session.remove()

    errors = run_together(RACERS, ask_approve_and_run)

    assert errors == []
    assert trouble_in_log(caplog) == []
    assert len(statuses) == NEWCOMERS and set(statuses) <= {200, 302}
    assert len(outcomes) == RACERS
    # The refusals approve_refund promises: a line already taken, more than was paid, or
    # (once the race refunded everything) an order that is no longer refundable.
    assert set(outcomes.values()) <= {
        "approved", "request refused", "line_refunded", "over_refund", "not_refundable"
    }
    # A refund racing another one of the same trade may get Alipay's "system busy"
    # (ACQ.SYSTEM_ERROR): unknown, so it stays processing until the next periodic round
    # asks the channel and sends it again under the same number.
    clock.advance(minutes=3)
    with app.app_context():
        tick()
        refunds = db.session.scalars(select(Refund).where(Refund.order_id == order_id)).all()
        # Every approved refund went through: nothing is left half way.
        assert {refund.status for refund in refunds} <= {"requested", "succeeded"}
        succeeded = [refund for refund in refunds if refund.status == "succeeded"]
        assert len(succeeded) == list(outcomes.values()).count("approved") >= 1
        refunded_fen = sum(refund.amount_fen for refund in succeeded)
        assert refunded_fen <= total_fen
        refunded_lines = list(
            db.session.scalars(
                select(RefundLine.order_line_id).where(RefundLine.refund_id.in_([r.id for r in succeeded]))
            )
        )
        assert len(refunded_lines) == len(set(refunded_lines))  # no line refunded twice
        line_amounts = dict(db.session.execute(
            select(OrderLine.id, OrderLine.amount_fen).where(OrderLine.order_id == order_id)
        ).all())
        assert refunded_fen == sum(line_amounts[line_id] for line_id in refunded_lines)
        order = db.session.get(Order, order_id)
        assert order.status == ("refunded" if refunded_fen == total_fen else "partially_refunded")
        revoked = {
            e.course_id for e in db.session.scalars(select(Enrollment)) if e.revoked_at is not None
        }
        assert revoked == {course_of_line[line_id] for line_id in refunded_lines}
        assert unbalanced_entry_ids() == []

        # What the race left must still refund exactly: the rest brings every leg to zero.
        if refunded_fen < total_fen:
            rest = refund_workflow.request_refund(order_id, learner_id, None, "the rest")
            db.session.commit()
            assert refund_workflow.approve_refund(rest, support_ids[0], "the rest") == "approved"
            db.session.commit()
            enqueue("execute_refund", rest)
        assert db.session.get(Order, order_id).status == "refunded"
        assert db.session.scalar(
            select(func.sum(Refund.amount_fen)).where(Refund.order_id == order_id, Refund.status == "succeeded")
        ) == total_fen
        assert set(order_account_sums(order_id).values()) == {0}
        assert unbalanced_entry_ids() == []
