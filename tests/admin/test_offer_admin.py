"""Finance creates and edits bundles and membership plans in the back office, each
change audited; a broken rule is shown and nothing is written."""
from __future__ import annotations

import json
from typing import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.bundles.models import Bundle
from app.extensions import db
from app.membership.models import MembershipPlan
from tests.earnings_helpers import make_course_of, make_instructor

Clients = Callable[[str], FlaskClient]
BUNDLE = {"slug": "stack", "title_zh": "全栈", "title_en": "Stack", "price_yuan": "150",
          "course_slugs": "a, b", "is_published": "y", "reason": "Autumn offer"}
PLAN = {"title_zh": "月度会员", "title_en": "Monthly", "price_yuan": "99", "period_days": "30",
        "pool_percent": "50", "is_active": "y", "reason": "New plan"}


def _courses(app: Flask) -> None:
    with app.app_context():
        lin = make_instructor("Lin")
        make_course_of(lin, 9900, "a")
        make_course_of(lin, 9900, "b")


def _audit(app: Flask, action: str) -> AuditEntry:
    with app.app_context():
        return db.session.scalar(select(AuditEntry).where(AuditEntry.action == action))


def test_finance_creates_and_edits_a_bundle(app: Flask, client_as: Clients) -> None:
    _courses(app)
    finance = client_as("finance")
    assert finance.post("/admin/bundle/new/", data=BUNDLE).status_code == 302
    with app.app_context():
        bundle = db.session.scalar(select(Bundle))
        assert (bundle.price_fen, [course.slug for course in bundle.courses]) == (15000, ["a", "b"])
        bundle_id = bundle.id
    assert json.loads(_audit(app, "bundle.create").after)["courses"] == ["a", "b"]
    edited = finance.post(f"/admin/bundle/edit/?id={bundle_id}", data={**BUNDLE, "price_yuan": "120"})
    assert edited.status_code == 302
    with app.app_context():
        assert db.session.get(Bundle, bundle_id).price_fen == 12000
    assert json.loads(_audit(app, "bundle.edit").before)["price_fen"] == 15000


def test_a_bundle_dearer_than_its_courses_is_refused(app: Flask, client_as: Clients) -> None:
    _courses(app)
    answer = client_as("finance").post("/admin/bundle/new/", data={**BUNDLE, "price_yuan": "200"},
                                       follow_redirects=True)
    assert "at most the courses&#39; list prices together" in answer.text
    with app.app_context():
        assert db.session.scalars(select(Bundle)).all() == []


def test_finance_creates_a_plan_and_support_may_not(app: Flask, client_as: Clients) -> None:
    assert client_as("support").post("/admin/membership_plan/new/", data=PLAN).status_code == 403
    assert client_as("finance").post("/admin/membership_plan/new/", data=PLAN).status_code == 302
    with app.app_context():
        plan = db.session.scalar(select(MembershipPlan))
        assert (plan.price_fen, plan.period_days, plan.pool_bps) == (9900, 30, 5000)
    assert _audit(app, "membership_plan.create") is not None
    assert client_as("support").get("/admin/membership_plan/").status_code == 200
