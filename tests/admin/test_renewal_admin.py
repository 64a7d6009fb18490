"""Staff set a course's access period and renewal price in the back office, audited;
a period of zero days or a negative renewal price is refused and changes nothing."""
from __future__ import annotations

import json

from flask import Flask

from app.catalog.models import Course
from app.extensions import db
from tests.admin.test_audited_edits import Clients, last_audit
from tests.helpers import make_course

VALUES = {"title_zh": "课程", "title_en": "Course", "summary_zh": "", "summary_en": "",
          "price_yuan": "100.00", "is_published": "y", "reason": "Yearly access"}


def test_an_admin_makes_a_course_time_limited_with_a_renewal_price(app: Flask, client_as: Clients) -> None:
    with app.app_context():
        course_id = make_course(10000, slug="yearly")
    edited = client_as("admin").post(f"/admin/course/edit/?id={course_id}",
                                     data={**VALUES, "access_days": "365", "renewal_price_yuan": "60.00"})
    assert edited.status_code == 302
    with app.app_context():
        course = db.session.get(Course, course_id)
        assert (course.access_days, course.renewal_price_fen) == (365, 6000)
    after = json.loads(last_audit(app, "course.edit").after)
    assert (after["access_days"], after["renewal_price_fen"]) == (365, 6000)


def test_zero_days_or_a_negative_renewal_price_is_refused(app: Flask, client_as: Clients) -> None:
    with app.app_context():
        course_id = make_course(10000, slug="yearly")
    admin = client_as("admin")
    for bad in ({"access_days": "0"}, {"renewal_price_yuan": "-5"}):
        answer = admin.post(f"/admin/course/edit/?id={course_id}", data={**VALUES, **bad})
        assert answer.status_code == 200  # the form again, with its error
    with app.app_context():
        course = db.session.get(Course, course_id)
        assert (course.access_days, course.renewal_price_fen, course.title_en) == (None, None, "Course yearly")
