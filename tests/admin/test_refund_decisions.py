"""Refund decisions through the back-office endpoints: approve, reject, retry, and the
maker-checker rule for large refunds. Each decision lands in the audit log."""
from __future__ import annotations

import re
from typing import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from app.accounts.services import change_role
from app.checkout.models import Order
from app.extensions import db
from app.payments.models import Refund
from tests.admin.conftest import (STAFF_EMAILS, PaidOrder, audit_rows, buy, refund_status,
                                  request_refund)

Clients = Callable[[str], FlaskClient]


def decide(client: FlaskClient, refund_id: int, decision: str, reason: str = "checked the policy"):
    return client.post(f"/admin/refund/{refund_id}/{decision}", data={"reason": reason})


def order_status(app: Flask, order_id: int) -> str:
    with app.app_context():
        return db.session.get(Order, order_id).status


def test_the_detail_page_shows_the_policy_and_the_decision_forms(
    app: Flask, paid_order: PaidOrder, client_as: Clients
) -> None:
    refund_id = request_refund(app, paid_order)
    page = client_as("support").get(f"/admin/refund/{refund_id}/")
    assert page.status_code == 200
    for decision in ("approve", "reject"):
        form = re.search(rf'<form method="post" action="/admin/refund/{refund_id}/{decision}"[^>]*>(.*?)</form>',
                         page.text, re.S)
        assert form, decision
        assert re.search(r'<input type="hidden" name="csrf_token" value="[^"]+">', form.group(1))
        assert 'name="reason"' in form.group(1)
    assert f"/admin/refund/{refund_id}/retry" not in page.text  # only for a failed refund
    assert "0 / 2" in page.text  # lessons opened of the course
    assert "Refund window ends" in page.text
    # Flask-Admin's details link leads to the same page.
    assert client_as("support").get(f"/admin/refund/details/?id={refund_id}").headers["Location"] == \
        f"/admin/refund/{refund_id}/"


def test_support_approves_a_small_refund_and_the_job_returns_the_money(
    app: Flask, paid_order: PaidOrder, client_as: Clients
) -> None:
    refund_id = request_refund(app, paid_order)
    response = decide(client_as("support"), refund_id, "approve", "Within the window")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/refund/{refund_id}/"
    # Jobs run inline after the commit: the emulator refunded it.
    assert refund_status(app, refund_id) == "succeeded"
    assert order_status(app, paid_order.order_id) == "refunded"
    assert ("refund.approve", STAFF_EMAILS["support"], "Within the window") in audit_rows(app, "refund")
    assert "Approved." in client_as("support").get(response.headers["Location"]).text


def test_support_rejects_a_refund_with_a_reason(app: Flask, paid_order: PaidOrder, client_as: Clients) -> None:
    refund_id = request_refund(app, paid_order)
    assert decide(client_as("support"), refund_id, "reject", "Course mostly watched").status_code == 302
    assert refund_status(app, refund_id) == "rejected"
    assert order_status(app, paid_order.order_id) == "paid"
    assert audit_rows(app, "refund") == [("refund.reject", STAFF_EMAILS["support"], "Course mostly watched")]


def test_a_decision_without_a_reason_changes_nothing(app: Flask, paid_order: PaidOrder, client_as: Clients) -> None:
    refund_id = request_refund(app, paid_order)
    response = decide(client_as("support"), refund_id, "approve", reason="   ")
    assert response.status_code == 302
    assert refund_status(app, refund_id) == "requested"
    assert audit_rows(app, "refund") == []
    assert "Please give a reason" in client_as("support").get(f"/admin/refund/{refund_id}/").text


def test_a_refused_decision_is_flashed_and_rolled_back(app: Flask, paid_order: PaidOrder, client_as: Clients) -> None:
    refund_id = request_refund(app, paid_order)
    decide(client_as("support"), refund_id, "reject", "No")
    response = decide(client_as("finance"), refund_id, "approve", "Changed my mind")
    assert response.status_code == 302
    assert refund_status(app, refund_id) == "rejected"
    assert "not waiting for approval" in client_as("finance").get(f"/admin/refund/{refund_id}/").text
    assert [row[0] for row in audit_rows(app, "refund")] == ["refund.reject"]


def test_a_large_refund_needs_a_second_approver_from_finance(
    app: Flask, paid_order: PaidOrder, client_as: Clients, staff: dict[str, int]
) -> None:
    app.config["LARGE_REFUND_FEN"] = 5000  # the ¥100.00 order is large now
    refund_id = request_refund(app, paid_order)
    support = client_as("support")

    decide(support, refund_id, "approve", "Looks fine")
    assert refund_status(app, refund_id) == "awaiting_finance"
    assert "finance must give the second approval" in support.get(f"/admin/refund/{refund_id}/").text

    # One support person cannot finish it, nor can another support person.
    decide(support, refund_id, "approve", "Approving again")
    decide(client_as("support2"), refund_id, "approve", "Me too")
    assert refund_status(app, refund_id) == "awaiting_finance"

    # Not even when the first approver becomes finance: maker and checker must differ.
    with app.app_context():
        change_role(staff["support"], "finance", staff["admin"], "Moved to finance")
        db.session.commit()
    decide(support, refund_id, "approve", "Now I am finance")
    assert refund_status(app, refund_id) == "awaiting_finance"
    assert "someone else must approve" in support.get(f"/admin/refund/{refund_id}/").text

    decide(client_as("finance"), refund_id, "approve", "Second approval")
    assert refund_status(app, refund_id) == "succeeded"
    assert audit_rows(app, "refund")[:2] == [
        ("refund.approve_first", STAFF_EMAILS["support"], "Looks fine"),
        ("refund.approve", STAFF_EMAILS["finance"], "Second approval"),
    ]
    with app.app_context():
        refund = db.session.get(Refund, refund_id)
        assert (refund.first_approved_by, refund.decided_by) == (staff["support"], staff["finance"])


def test_an_admin_who_gave_the_first_approval_cannot_give_the_second(
    app: Flask, paid_order: PaidOrder, client_as: Clients
) -> None:
    app.config["LARGE_REFUND_FEN"] = 5000
    refund_id = request_refund(app, paid_order)
    decide(client_as("admin"), refund_id, "approve", "First")
    decide(client_as("admin"), refund_id, "approve", "Second, by myself")
    assert refund_status(app, refund_id) == "awaiting_finance"
    decide(client_as("finance2"), refund_id, "approve", "Checked")
    assert refund_status(app, refund_id) == "succeeded"


def test_a_failed_refund_is_retried_under_its_number(
    app: Flask, paid_order: PaidOrder, client_as: Clients
) -> None:
    refund_id = request_refund(app, paid_order)
    with app.app_context():
        # As if the channel had refused it: the workflow's "failed" state.
        db.session.execute(update(Refund).where(Refund.id == refund_id).values(
            status="failed", last_error="SYSTEM_ERROR", tries=1))
        db.session.commit()
    page = client_as("support").get(f"/admin/refund/{refund_id}/")
    assert f'action="/admin/refund/{refund_id}/retry"' in page.text
    assert f'action="/admin/refund/{refund_id}/approve"' not in page.text

    assert decide(client_as("support"), refund_id, "retry", "The channel is back").status_code == 302
    assert ("refund.retry", STAFF_EMAILS["support"], "The channel is back") in audit_rows(app, "refund")
    assert refund_status(app, refund_id) == "succeeded"  # the job ran after the commit


def test_approving_one_course_of_two_leaves_the_order_partially_refunded(
    app: Flask, learner: int, client_as: Clients
) -> None:
    order = buy(app, client_as("learner"), prices=(10000, 20000))
    with app.app_context():
        first_line = db.session.get(Order, order.order_id).lines[0].id
    refund_id = request_refund(app, order, [first_line])
    decide(client_as("finance"), refund_id, "approve")
    assert refund_status(app, refund_id) == "succeeded"
    assert order_status(app, order.order_id) == "partially_refunded"
