"""Coupon, course, instructor and role edits: validated by a service and audited with
before, after and the reason typed."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.accounts.models import User
from app.audit.models import AuditEntry
from app.cart.models import Coupon
from app.catalog.models import Course, Instructor
from app.extensions import db
from tests.admin.conftest import STAFF_EMAILS
from tests.helpers import make_course

Clients = Callable[[str], FlaskClient]

COUPON = {"code": "spring20", "kind": "percent", "percent": "20", "amount_yuan": "",
          "starts_at": "2026-11-20T10:00", "ends_at": "2026-12-01T00:00", "min_amount_yuan": "50",
          "max_redemptions": "", "per_user_limit": "1", "is_active": "y", "reason": "Spring campaign"}


def last_audit(app: Flask, action: str) -> AuditEntry:
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id.desc()))
        assert entry is not None, action
        db.session.expunge(entry)
        return entry


def coupons(app: Flask) -> list[Coupon]:
    with app.app_context():
        rows = list(db.session.scalars(select(Coupon).order_by(Coupon.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def test_finance_creates_a_percent_coupon(app: Flask, client_as: Clients) -> None:
    response = client_as("finance").post("/admin/coupon/new/", data=COUPON)
    assert response.status_code == 302, response.text
    [coupon] = coupons(app)
    assert (coupon.code, coupon.kind, coupon.percent_off_bps, coupon.amount_off_fen) == ("SPRING20", "percent", 2000, None)
    assert coupon.min_amount_fen == 5000
    # Beijing wall-clock times from the form, stored as UTC.
    assert (coupon.starts_at, coupon.ends_at) == (datetime(2026, 11, 20, 2), datetime(2026, 11, 30, 16))
    entry = last_audit(app, "coupon.create")
    assert (entry.actor_email, entry.reason, entry.before) == (STAFF_EMAILS["finance"], "Spring campaign", None)
    assert json.loads(entry.after)["percent_off_bps"] == 2000


@pytest.mark.parametrize(("changes", "message"), [
    ({"percent": "0"}, "Number must be between 1 and 100"),
    ({"percent": "150"}, "Number must be between 1 and 100"),
    ({"percent": ""}, "1 % to 100 %"),
    ({"kind": "fixed", "amount_yuan": "0"}, "positive amount"),
    ({"kind": "fixed", "amount_yuan": "-5"}, "Enter yuan"),
    ({"ends_at": "2026-11-20T10:00"}, "start before it ends"),
    ({"code": "ab"}, "Field must be between 3 and 40 characters long."),
    ({"code": "bad code!"}, "3 to 40 letters"),
    ({"reason": ""}, "Please give a reason."),
])
def test_an_invalid_coupon_is_refused(app: Flask, client_as: Clients, changes: dict, message: str) -> None:
    response = client_as("finance").post("/admin/coupon/new/", data={**COUPON, **changes}, follow_redirects=True)
    assert message in response.text
    assert coupons(app) == []


def test_a_coupon_code_is_unique_whatever_its_case(app: Flask, client_as: Clients) -> None:
    finance = client_as("finance")
    finance.post("/admin/coupon/new/", data=COUPON)
    response = finance.post("/admin/coupon/new/", data={**COUPON, "code": "Spring20"})
    assert "already used by another coupon" in response.text
    assert len(coupons(app)) == 1


def test_editing_a_coupon_records_before_and_after(app: Flask, client_as: Clients) -> None:
    finance = client_as("finance")
    finance.post("/admin/coupon/new/", data=COUPON)
    [coupon] = coupons(app)
    form = finance.get(f"/admin/coupon/edit/?id={coupon.id}").text
    assert 'value="20.00"' in form and 'value="2026-11-20T10:00"' in form  # shown as entered
    response = finance.post(f"/admin/coupon/edit/?id={coupon.id}",
                            data={**COUPON, "kind": "fixed", "percent": "", "amount_yuan": "30",
                                  "reason": "Switch to a fixed discount"})
    assert response.status_code == 302
    [coupon] = coupons(app)
    assert (coupon.kind, coupon.percent_off_bps, coupon.amount_off_fen) == ("fixed", None, 3000)
    entry = last_audit(app, "coupon.edit")
    assert entry.reason == "Switch to a fixed discount"
    assert json.loads(entry.before)["percent_off_bps"] == 2000
    assert json.loads(entry.after)["amount_off_fen"] == 3000


def test_support_may_list_coupons_but_not_create_them(app: Flask, client_as: Clients) -> None:
    support = client_as("support")
    assert support.get("/admin/coupon/").status_code == 200
    assert support.post("/admin/coupon/new/", data=COUPON).status_code == 403
    assert coupons(app) == []


def test_an_admin_edits_a_course_and_the_change_is_audited(app: Flask, client_as: Clients) -> None:
    with app.app_context():
        course_id = make_course(10000, slug="edit-me")
    values = {"title_zh": "新标题", "title_en": "New title", "summary_zh": "", "summary_en": "",
              "price_yuan": "120.00", "is_published": "y", "reason": "Price review"}
    assert client_as("finance").post(f"/admin/course/edit/?id={course_id}", data=values).status_code == 403
    assert client_as("admin").post(f"/admin/course/edit/?id={course_id}", data=values).status_code == 302
    with app.app_context():
        course = db.session.get(Course, course_id)
        assert (course.price_fen, course.title_en) == (12000, "New title")
    entry = last_audit(app, "course.edit")
    assert entry.reason == "Price review"
    assert json.loads(entry.before) == {"price_fen": 10000, "title_en": "Course edit-me", "title_zh": "课程 edit-me"}
    assert json.loads(entry.after) == {"price_fen": 12000, "title_en": "New title", "title_zh": "新标题"}


def test_finance_renames_an_instructor_and_the_change_is_audited(app: Flask, client_as: Clients) -> None:
    with app.app_context():
        make_course(10000, slug="renamed")
        instructor_id = db.session.scalar(select(Instructor.id))
    values = {"name": "林晓", "bio_zh": "", "bio_en": "", "reason": "Legal name"}
    assert client_as("support").post(f"/admin/instructor/edit/?id={instructor_id}", data=values).status_code == 403
    assert client_as("finance").post(f"/admin/instructor/edit/?id={instructor_id}", data=values).status_code == 302
    entry = last_audit(app, "instructor.edit")
    assert (json.loads(entry.before), json.loads(entry.after)) == ({"name": "Teacher renamed"}, {"name": "林晓"})


def test_an_admin_changes_a_role_with_a_reason(app: Flask, client_as: Clients, staff: dict[str, int]) -> None:
    admin = client_as("admin")
    user_id = staff["support2"]
    assert admin.post(f"/admin/user/edit/?id={user_id}", data={"role": "finance", "reason": ""}).status_code == 200
    response = admin.post(f"/admin/user/edit/?id={user_id}", data={"role": "finance", "reason": "Joined finance"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(User, user_id).role == "finance"
    entry = last_audit(app, "user.role_change")
    assert (entry.actor_email, entry.reason, entry.target_id) == (STAFF_EMAILS["admin"], "Joined finance", str(user_id))
    assert (json.loads(entry.before), json.loads(entry.after)) == ({"role": "support"}, {"role": "finance"})


def test_an_admin_cannot_change_their_own_role(app: Flask, client_as: Clients, staff: dict[str, int]) -> None:
    response = client_as("admin").post(f"/admin/user/edit/?id={staff['admin']}",
                                       data={"role": "support", "reason": "Oops"})
    assert "Ask another admin" in response.text
    with app.app_context():
        assert db.session.get(User, staff["admin"]).role == "admin"


def test_the_audit_log_lists_newest_first_and_filters_by_action(app: Flask, client_as: Clients) -> None:
    finance = client_as("finance")
    finance.post("/admin/coupon/new/", data=COUPON)
    [coupon] = coupons(app)
    finance.post(f"/admin/coupon/edit/?id={coupon.id}", data={**COUPON, "percent": "25", "reason": "Deeper cut"})
    page = client_as("support").get("/admin/audit/").text
    assert page.index("Deeper cut") < page.index("Spring campaign")
    filters = client_as("support").get("/admin/audit/?search=coupon.edit").text
    assert "Deeper cut" in filters and "Spring campaign" not in filters
