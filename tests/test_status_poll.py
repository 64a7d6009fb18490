"""The pay page's status poll checks who is signed in itself (app/checkout/status_poll.py:
one statement, no user loader), so each rule the rest of the site gets from Flask-Login
and the second-factor hook is tested here against it: the owner sees the order; another
learner gets 404; the logged out, a session of an older version, a deactivated account
and a staff member with only the password get 401; every answer is JSON, never cached.
"""
from __future__ import annotations

from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.accounts.models import User
from app.accounts.services import create_user, end_sessions
from app.extensions import db
from app.payments.models import PaymentAttempt
from app.security.headers import CONTENT_SECURITY_POLICY
from tests.conftest import Clock
from tests.helpers import attempt_of, checkout, login, make_course, make_learner

ANN = ("ann@example.com", "correct-horse")
BOB = ("bob@example.com", "bob-password-1")
SAM = ("sam@example.com", "staff-password-1")  # support staff, who buys courses too


@pytest.fixture
def order_no(app: Flask, client: FlaskClient) -> str:
    """Ann's pending order; ``client`` is Ann's browser, signed in."""
    with app.app_context():
        course_id = make_course(10000, slug="poll")
        make_learner(*ANN)
        make_learner(*BOB)
    login(client, *ANN)
    return checkout(client, [course_id])


def poll(client: FlaskClient, order_no: str, **headers: str):  # noqa: ANN201 - a TestResponse
    return client.get(f"/orders/{order_no}/status", headers=headers)


def assert_refused(response, status: int, code: str) -> None:  # noqa: ANN001
    assert (response.status_code, response.is_json) == (status, True), response.get_data()[:200]
    assert response.json["code"] == code
    assert response.headers["Cache-Control"] == "no-store"
    assert "order_no" not in response.json


def set_user(app: Flask, email: str, **values: object) -> None:
    with app.app_context():
        db.session.execute(update(User).where(User.email == email).values(**values))
        db.session.commit()


def test_the_owner_sees_the_order_uncached_with_the_security_headers(client, order_no):
    response = poll(client, order_no)
    assert response.status_code == 200
    assert response.json["order_no"] == order_no and response.json["status"] == "pending"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_another_learners_order_is_not_found(app, order_no):
    bob = app.test_client()
    login(bob, *BOB)
    assert_refused(poll(bob, order_no), 404, "order_not_found")


@pytest.mark.parametrize("text", ["CC20261120000000000000", "CC1", "CC20261120000000000000\x00", "C" * 5000,
                                  "订单", "%"])
def test_a_number_that_is_no_order_of_yours_is_not_found(client, order_no, text):
    assert_refused(poll(client, quote(text, safe="")), 404, "order_not_found")


def test_the_logged_out_are_asked_to_log_in(app, client, order_no):
    assert_refused(poll(app.test_client(), order_no), 401, "login_required")
    assert client.post("/logout").status_code == 302
    assert_refused(poll(client, order_no), 401, "login_required")


def test_a_session_of_an_older_version_is_nobody(app, client, order_no):
    """Logging out elsewhere (or a second-factor reset) raises the session version: a
    cookie copied before, or another browser's, stops seeing the order."""
    copied = client.get_cookie("session").value
    elsewhere = app.test_client()
    login(elsewhere, *ANN)
    assert poll(elsewhere, order_no).status_code == 200
    assert elsewhere.post("/logout").status_code == 302
    assert_refused(poll(client, order_no), 401, "login_required")
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert_refused(poll(thief, order_no), 401, "login_required")
    # Whatever the URL: a stale session is not told whether an order exists.
    assert_refused(poll(client, "not-an-order"), 401, "login_required")


def test_a_session_naming_a_version_the_user_has_not_reached_is_nobody(app, client, order_no):
    with app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.email == ANN[0]))
    with client.session_transaction() as session:
        session["_user_id"] = f"{user_id}:2"
    assert_refused(poll(client, order_no), 401, "login_required")
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)  # a session from before versions
    assert_refused(poll(client, order_no), 401, "login_required")


def test_a_deactivated_account_is_signed_out_of_the_poll_and_every_page(app, client, order_no):
    set_user(app, ANN[0], is_active_account=False)
    assert_refused(poll(client, order_no), 401, "login_required")
    assert client.get(f"/orders/{order_no}/pay").headers["Location"].startswith("/login")
    set_user(app, ANN[0], is_active_account=True)
    assert poll(client, order_no).status_code == 200


@pytest.fixture
def staff_order(app: Flask) -> tuple[FlaskClient, str]:
    """Sam's own pending order, and Sam's browser, past the second factor."""
    with app.app_context():
        course_id = make_course(10000, slug="staff-course")
        create_user(*SAM, "Sam", role="support")
        db.session.commit()
    browser = app.test_client()
    login(browser, *SAM)  # sets up the second factor, as at a first login
    return browser, checkout(browser, [course_id])


def test_staff_see_their_own_order_after_the_second_factor(staff_order):
    browser, number = staff_order
    assert poll(browser, number).json["status"] == "pending"


def test_a_password_only_staff_session_does_not_see_even_its_own_order(app, staff_order):
    _, number = staff_order
    password_only = app.test_client()
    signed_in = password_only.post("/login", data={"email": SAM[0], "password": SAM[1]})
    assert signed_in.headers["Location"].startswith("/second-factor")
    assert_refused(poll(password_only, number), 401, "second_factor_required")
    assert_refused(poll(password_only, "CC20261120000000000000"), 401, "second_factor_required")


def test_a_staff_cookie_replayed_elsewhere_or_past_twelve_hours_needs_the_second_factor(
    staff_order, clock: Clock
):
    browser, number = staff_order
    assert_refused(poll(browser, number, **{"User-Agent": "curl/8.0"}), 401, "second_factor_required")
    clock.advance(hours=11, minutes=59)
    assert poll(browser, number).status_code == 200
    clock.advance(minutes=1)
    assert_refused(poll(browser, number), 401, "second_factor_required")


def test_a_second_factor_reset_ends_the_staff_session_for_the_poll(app, staff_order):
    browser, number = staff_order
    with app.app_context():
        end_sessions(db.session.scalar(select(User.id).where(User.email == SAM[0])))
        db.session.commit()
    assert_refused(poll(browser, number), 401, "login_required")


def test_a_poll_claims_the_overdue_active_query_once(app, client, clock, order_no):
    """The poll takes the due active query (pushing the next one out) and the channel is
    asked: the emulator says the QR is unpaid, so the order stays pending."""
    with app.app_context():
        first_due = attempt_of(order_no).next_query_at
    assert first_due is not None
    sent = len(app.extensions["test.transport"].sent)
    assert poll(client, order_no).json["status"] == "pending"
    with app.app_context():
        assert attempt_of(order_no).next_query_at == first_due  # not due yet: nothing written
    clock.current = first_due
    assert poll(client, order_no).json["status"] == "pending"
    with app.app_context():
        claimed = db.session.scalar(select(PaymentAttempt.next_query_at))
    assert claimed is not None and claimed > first_due
    asked = len(app.extensions["test.transport"].sent)
    assert asked > sent
    assert poll(client, order_no).json["status"] == "pending"
    assert len(app.extensions["test.transport"].sent) == asked  # claimed: not asked again


def test_the_poll_hands_its_connection_back_out_of_autocommit(app, client, order_no, is_postgres):
    """On PostgreSQL the poll reads in autocommit; the next user of its pooled connection
    must be back in a transaction, or a rollback would undo nothing."""
    if not is_postgres:
        pytest.skip("SQLite connections are never switched to autocommit")
    with app.app_context():
        db.engine.dispose()  # one pooled connection: the poll's, handed to the next user
    assert poll(client, order_no).status_code == 200
    with app.app_context():
        db.session.execute(update(User).where(User.email == ANN[0]).values(display_name="Changed"))
        db.session.rollback()
        assert db.session.scalar(select(User.display_name).where(User.email == ANN[0])) == "Ann"
