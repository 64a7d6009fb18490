"""Deny by default: every route of every registered admin view, for every kind of
visitor, answers exactly as the PERMISSIONS / ACTIONS table says.

The routes are read from the app's URL map and the views from the Admin instance, so a
view or route added later is in the matrix without anyone remembering to add it.
"""
from __future__ import annotations

import uuid
from datetime import date
from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.admin.base import StaffModelView
from app.admin.permissions import ACTIONS, PERMISSIONS, may, may_view
from app.audit.models import AuditEntry
from app.cart.models import Coupon
from app.earnings import adjustments, payouts
from app.earnings.bank_accounts import save_bank_account
from app.earnings.models import CommissionRule
from app.earnings.statements import close_statement
from app.extensions import db
from app.invoices import services as invoices
from app.payments.models import InboxNotification, PaymentAttempt
from app.payments.refund_workflow import SECOND_APPROVERS
from app.platform_events.endpoints import create_endpoint
from app.platform_events.models import PlatformDelivery, PlatformEvent
from app.receipts.models import Receipt
from app.reconciliation.matching import PAYMENT, DiscrepancyKind, Finding
from app.reconciliation.services import record_run
from app.timeutil import now
from tests.admin.conftest import PaidOrder, request_refund
from tests.helpers import make_coupon

VISITORS = ["anonymous", "learner", "instructor", "support", "finance", "admin"]
ROLE = {"anonymous": None, "learner": "learner"}


def admin_views(app: Flask) -> list:
    return app.extensions["cashier.admin"]._views


def admin_routes(app: Flask) -> list[tuple[object, str, str, str]]:
    """(view, route function name, URL, method) of every admin route but static files."""
    routes = []
    for view in admin_views(app):
        for rule in app.url_map.iter_rules():
            blueprint, _, function = rule.endpoint.partition(".")
            if blueprint != view.endpoint or function == "static":
                continue
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                routes.append((view, function, rule, method))
    return routes


@pytest.fixture
def row_ids(app: Flask, paid_order: PaidOrder, staff: dict[str, int]) -> dict[str, int]:
    """A real row for each view, so detail and edit pages render rather than redirect."""
    refund_id = request_refund(app, paid_order)
    with app.app_context():
        coupon_id = make_coupon("MATRIX")
        # Earnings rows: a payout batch (instructor 1 has a bank account and is owed money)
        # and a closed statement.
        save_bank_account(1, "Matrix Teacher", "ICBC Beijing", "6222 0202 0011 2233 445", staff["admin"])
        adjustments.post_adjustment(1, 20000, "matrix", staff["finance"], uuid.uuid4().hex)
        batch_id = payouts.create_batch("2026-10", 10000, staff["finance"]).batch_id
        statement_id = close_statement(1, "2026-10").id
        # A discrepancy of a reconciliation run, for its detail page and its actions.
        missing = Finding(DiscrepancyKind.MISSING_OURS, PAYMENT, "MATRIX-TRADE",
                          theirs_amount_fen=100, theirs_state="succeeded", theirs_fee_fen=1)
        [discrepancy_id] = record_run("alipay", date(2026, 11, 19), 1, [missing], now()).discrepancy_ids
        invoice_id = invoices.request_invoice(paid_order.order_id, paid_order.learner_id,
                                              invoices.InvoiceValues("personal", "Ann", "", "ann@example.com"))
        # A platform endpoint and a failed delivery of one event to it.
        endpoint_id = create_endpoint("https://lms.example.com/hooks", "", ["order.paid"], staff["admin"],
                                      production=True).endpoint_id
        event = PlatformEvent(public_id="evt_matrix", event_type="order.paid", dedupe_key="matrix", body="{}")
        db.session.add(event)
        db.session.flush()
        delivery = PlatformDelivery(event_id=event.id, endpoint_id=endpoint_id, event_type="order.paid",
                                    status="failed", attempts=8)
        db.session.add(delivery)
        db.session.flush()
        db.session.commit()
        return {
            "order": paid_order.order_id,
            "refund": refund_id,
            "attempt": db.session.scalar(select(func.min(PaymentAttempt.id))),
            "inbox": db.session.scalar(select(func.min(InboxNotification.id))),
            "coupon": coupon_id,
            "course": paid_order.course_ids[0],
            "instructor": 1,
            "user": staff["support"],
            "audit": db.session.scalar(select(func.min(AuditEntry.id))) or 1,
            "commission_rule": db.session.scalar(select(func.min(CommissionRule.id))),
            "payout": batch_id,
            "statement": statement_id,
            "reconciliation": discrepancy_id,
            "invoice": invoice_id,
            "receipt": db.session.scalar(select(Receipt.id).where(Receipt.order_id == paid_order.order_id)),
            "platform_endpoint": endpoint_id,
            "platform_delivery": delivery.id,
        }


# Route arguments that are names, not row ids: a value the route knows, so a permitted
# visitor reaches the page itself rather than a 404.
NAMED_ARGUMENTS = {"export_type": "csv", "key": "funnel"}  # key: an analytics chart's CSV


def url_for_rule(rule, view, row_ids: dict[str, int]) -> str:
    row_id = row_ids.get(view.endpoint, 1)
    values = {name: NAMED_ARGUMENTS.get(name, row_id) for name in rule.arguments}
    path = rule.build(values, append_unknown=False)[1]
    return f"{path}?id={row_id}"


def expected_denial(visitor: str, view, function: str, method: str) -> str | None:
    """'login', 'forbidden', or None when the table lets this visitor through."""
    if visitor == "anonymous":
        return "login"
    role = ROLE.get(visitor, visitor)
    if not may_view(role, view.endpoint):
        return "forbidden"
    action = view.route_actions.get(function)
    if function == "action_view":
        action = "delete"  # the only batch action Flask-Admin offers by default
    if action is not None and not may(role, view.endpoint, action):
        return "forbidden"
    return None


def test_every_registered_view_is_in_the_permission_table(app: Flask) -> None:
    endpoints = {view.endpoint for view in admin_views(app)}
    assert endpoints == set(PERMISSIONS)
    assert {view for view, _ in ACTIONS} <= endpoints
    for view in admin_views(app):
        for action in view.route_actions.values():
            assert action in {"create", "edit", "delete", "export", "inline_edit"} or (view.endpoint, action) in ACTIONS


def test_every_state_changing_route_is_a_named_action(app: Flask) -> None:
    """A POST route missing from a view's route_actions would be open to every role that
    may see the view: each one must name its action, so the table decides."""
    unnamed = sorted(
        f"{view.endpoint}.{function}"
        for view, function, _, method in admin_routes(app)
        if method != "GET" and function != "action_view" and function not in view.route_actions
    )
    assert unnamed == []


def test_the_second_approval_roles_match_the_refund_service() -> None:
    assert ACTIONS[("refund", "second_approval")] == SECOND_APPROVERS
    assert all(role in ACTIONS[("refund", "approve")] for role in SECOND_APPROVERS)


@pytest.mark.parametrize("visitor", VISITORS)
def test_role_matrix(app: Flask, client_as: Callable[[str], FlaskClient], row_ids: dict[str, int],
                     visitor: str) -> None:
    client = client_as(visitor)
    mismatches = []
    routes = admin_routes(app)
    assert len(routes) > 60  # every view and its routes were found
    for view, function, rule, method in routes:
        url = url_for_rule(rule, view, row_ids)
        # Empty POSTs: a permitted decision fails validation and changes nothing.
        data = {"action": "delete", "rowid": "1"} if function == "action_view" else {}
        response = client.open(url, method=method, data=data)
        status = response.status_code
        denial = expected_denial(visitor, view, function, method)
        if denial == "login":
            ok = status == 302 and "/login?next=" in response.headers["Location"]
        elif denial == "forbidden":
            ok = status == 403
        elif method == "GET" and function in ("index", "index_view", "detail"):
            ok = status == 200
        else:
            ok = status not in (401, 403) and status < 500
        if not ok:
            mismatches.append(f"{method} {url} ({view.endpoint}.{function}): {status}, expected {denial or 'allowed'}")
    assert mismatches == []


@pytest.mark.parametrize("visitor", ["learner", "instructor"])
def test_learners_and_instructors_get_403_everywhere(app: Flask, client_as: Callable[[str], FlaskClient],
                                                     row_ids: dict[str, int], visitor: str) -> None:
    client = client_as(visitor)
    for view, function, rule, method in admin_routes(app):
        assert client.open(url_for_rule(rule, view, row_ids), method=method).status_code == 403


def test_the_anonymous_are_sent_to_log_in_and_come_back(app: Flask, client: FlaskClient) -> None:
    response = client.get("/admin/refund/?page=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/admin/refund/?page%3D1"


MONEY_VIEWS = ["order", "attempt", "inbox", "refund", "orphan", "rejected", "audit", "statement", "invoice",
               "receipt"]


@pytest.mark.parametrize("endpoint", MONEY_VIEWS)
def test_money_rows_cannot_be_created_edited_or_deleted_even_by_an_admin(
    app: Flask, client_as: Callable[[str], FlaskClient], row_ids: dict[str, int], endpoint: str
) -> None:
    view = next(view for view in admin_views(app) if view.endpoint == endpoint)
    assert isinstance(view, StaffModelView)
    assert (view.can_create, view.can_edit, view.can_delete) == (False, False, False)
    admin = client_as("admin")
    row_id = row_ids.get(endpoint, 1)
    assert admin.get(f"/admin/{endpoint}/new/").status_code == 403
    assert admin.post(f"/admin/{endpoint}/new/", data={}).status_code == 403
    assert admin.get(f"/admin/{endpoint}/edit/?id={row_id}").status_code == 403
    assert admin.post(f"/admin/{endpoint}/edit/?id={row_id}", data={}).status_code == 403
    assert admin.post(f"/admin/{endpoint}/delete/", data={"id": row_id}).status_code == 403
    assert admin.post(f"/admin/{endpoint}/action/", data={"action": "delete", "rowid": row_id}).status_code == 403
    listing = admin.get(f"/admin/{endpoint}/")
    assert listing.status_code == 200
    assert f"/admin/{endpoint}/new/" not in listing.text and f"/admin/{endpoint}/edit/" not in listing.text


def test_a_coupon_is_never_deleted(app: Flask, client_as: Callable[[str], FlaskClient],
                                   row_ids: dict[str, int]) -> None:
    response = client_as("admin").post("/admin/coupon/delete/", data={"id": row_ids["coupon"]})
    assert response.status_code == 403
    with app.app_context():
        assert db.session.get(Coupon, row_ids["coupon"]) is not None


# The earnings issue's access rules, written out on their own rather than read from
# permissions.py, so a change to the table that breaks them fails here. None: seeing the view.
EARNINGS_ACCESS: dict[tuple[str, str | None], set[str]] = {
    ("commission_rule", None): {"support", "finance", "admin"},
    ("commission_rule", "create"): {"finance", "admin"},
    ("commission_rule", "withdraw"): {"finance", "admin"},
    ("course", "authors"): {"finance", "admin"},
    ("instructor", None): {"support", "finance", "admin"},
    ("instructor", "adjust"): {"finance", "admin"},
    ("payout", None): {"finance", "admin"},
    ("payout", "create_batch"): {"finance", "admin"},
    ("payout", "export_batch"): {"finance", "admin"},
    ("payout", "mark_paid"): {"finance", "admin"},
    ("payout", "mark_failed"): {"finance", "admin"},
    ("statement", None): {"finance", "admin"},
}


# Issue 11: payment analytics are for finance and admins.
ANALYTICS_ACCESS = {"finance", "admin"}


def test_payment_analytics_follow_the_issue(app: Flask) -> None:
    roles = {None, "learner", "instructor", "support", "finance", "admin"}
    assert {role for role in roles if may_view(role, "analytics")} == ANALYTICS_ACCESS
    routes = {(function, method) for view, function, _, method in admin_routes(app) if view.endpoint == "analytics"}
    assert routes == {("index", "GET"), ("money", "GET"), ("csv_file", "GET")}


@pytest.mark.parametrize(("view", "action"), list(EARNINGS_ACCESS))
def test_the_earnings_views_follow_the_issue(view: str, action: str | None) -> None:
    roles = {None, "learner", "instructor", "support", "finance", "admin"}
    allowed = {role for role in roles if (may_view(role, view) if action is None else may(role, view, action))}
    assert allowed == EARNINGS_ACCESS[(view, action)]


@pytest.mark.parametrize("endpoint", ["commission_rule", "payout", "statement"])
def test_the_earnings_views_are_in_the_matrix(app: Flask, endpoint: str) -> None:
    routes = [(function, method) for view, function, _, method in admin_routes(app) if view.endpoint == endpoint]
    assert ("index" if endpoint == "payout" else "index_view", "GET") in routes
    assert any(method == "POST" for _, method in routes) or endpoint == "statement"


def test_the_earnings_actions_match_the_services() -> None:
    """The back office offers payouts and adjustments to the roles the services accept."""
    for action in ("create_batch", "export_batch", "mark_paid", "mark_failed"):
        assert ACTIONS[("payout", action)] == payouts.PAYOUT_STAFF
    assert ACTIONS[("instructor", "adjust")] == adjustments.ADJUSTING_STAFF
