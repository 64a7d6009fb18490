"""A learner buys a course through the pages, the emulator and the callback job."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from app.catalog.models import Enrollment, LessonView
from app.checkout.models import Order
from app.extensions import db
from app.ledger.models import JournalEntry
from app.ledger.services import unbalanced_entry_ids
from tests.helpers import attempt_of, checkout, login, make_coupon, make_course, make_learner, pay_at_emulator


def test_worked_example_pays_94_50_and_enrolls(app, client):
    app.config["TAX_RATE"] = Decimal("0.05")
    with app.app_context():
        course_id = make_course(10000)
        make_coupon("TEN", percent_off_bps=1000)
        make_learner()
    login(client)
    order_no = checkout(client, [course_id], coupon="TEN")

    page = client.get(f"/orders/{order_no}/pay")
    assert "¥94.50" in page.text
    assert "<svg" in page.text
    assert client.get(f"/orders/{order_no}/status").json["status"] == "pending"

    with app.app_context():
        attempt = attempt_of(order_no)
        assert attempt.amount_fen == 9450
        qr_url = attempt.qr_code
    pay_at_emulator(app, qr_url)

    status = client.get(f"/orders/{order_no}/status").json
    assert status["status"] == "paid" and status["paid"] and status["terminal"]
    assert "Course course" in client.get("/my/courses").text
    assert order_no in client.get("/orders").text
    lesson = client.get("/courses/course/lessons/1")
    assert lesson.status_code == 200
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.order_no == order_no))
        assert (order.subtotal_fen, order.discount_fen, order.tax_fen, order.total_fen) == (10000, 1000, 450, 9450)
        assert db.session.scalar(select(func.count(Enrollment.id))) == 1
        assert db.session.scalar(select(func.count(JournalEntry.id))) == 1
        assert db.session.scalar(select(func.count(LessonView.id))) == 1
        assert unbalanced_entry_ids() == []


def test_lessons_of_an_unowned_course_redirect_to_the_course_page(app, client):
    with app.app_context():
        make_course(10000)
        make_learner()
    login(client)
    response = client.get("/courses/course/lessons/1")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/courses/course")


def test_seed_demo_loads_the_catalog_once(app, runner, client):
    first = runner.invoke(args=["seed-demo"])
    second = runner.invoke(args=["seed-demo"])
    assert "demo data loaded" in first.output
    assert "nothing loaded" in second.output
    courses = client.get("/api/v1/courses").json["courses"]
    assert len(courses) == 12
    assert len({course["instructor"] for course in courses}) == 4
    page = client.get("/")
    assert page.status_code == 200 and "Python from Zero" in page.text
