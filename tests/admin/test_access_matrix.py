"""Deny by default: every route of every registered admin view, for every kind of
visitor, answers exactly as the PERMISSIONS / ACTIONS table says.

The routes are read from the app's URL map and the views from the Admin instance, so a
view or route added later is in the matrix without anyone remembering to add it.
"""
from __future__ import annotations

from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.admin.base import StaffModelView
from app.admin.permissions import ACTIONS, PERMISSIONS, may, may_view
from app.audit.models import AuditEntry
from app.cart.models import Coupon
from app.extensions import db
from app.payments.models import InboxNotification, PaymentAttempt
from app.payments.refund_workflow import SECOND_APPROVERS
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
        }


def url_for_rule(rule, view, row_ids: dict[str, int]) -> str:
    row_id = row_ids.get(view.endpoint, 1)
    values = {name: ("csv" if name == "export_type" else row_id) for name in rule.arguments}
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


MONEY_VIEWS = ["order", "attempt", "inbox", "refund", "orphan", "rejected", "audit"]


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
