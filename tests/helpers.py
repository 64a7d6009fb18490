"""Small steps the tests share: a learner, a course, a coupon, paying at the emulator."""
from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.accounts.services import create_user
from app.cart.models import Coupon
from app.catalog.models import Course, Instructor, Lesson
from app.checkout.models import Order
from app.earnings.rules import add_rule
from app.extensions import db
from app.payments.models import PaymentAttempt


def make_course(
    price_fen: int = 10000, slug: str = "course", commission_bps: int = 7000, lessons: int = 2
) -> int:
    instructor = Instructor(name=f"Teacher {slug}")
    db.session.add(instructor)
    db.session.flush()
    add_rule(commission_bps, None, None, "test", instructor_id=instructor.id)
    course = Course(
        slug=slug, instructor_id=instructor.id, title_zh=f"课程 {slug}", title_en=f"Course {slug}",
        price_fen=price_fen,
    )
    for position in range(1, lessons + 1):
        course.lessons.append(Lesson(position=position, title_zh="第一课", title_en="One"))
    db.session.add(course)
    db.session.commit()
    return course.id


def make_coupon(code: str = "TEN", **values: Any) -> int:
    values.setdefault("kind", "percent")
    if values["kind"] == "percent":
        values.setdefault("percent_off_bps", 1000)
    coupon = Coupon(code=code, **values)
    db.session.add(coupon)
    db.session.commit()
    return coupon.id


def make_learner(email: str = "ann@example.com", password: str = "correct-horse") -> int:
    user_id = create_user(email, password, "Ann")
    db.session.commit()
    return user_id


def login(client: FlaskClient, email: str = "ann@example.com", password: str = "correct-horse") -> None:
    response = client.post("/login", data={"email": email, "password": password})
    assert response.status_code == 302, response.text


def checkout(
    client: FlaskClient, course_ids: list[int], coupon: str | None = None, channel: str = "alipay"
) -> str:
    """Add courses, apply a coupon, check out; returns the order number."""
    for course_id in course_ids:
        client.post(f"/cart/add/{course_id}")
    if coupon:
        client.post("/cart/coupon", data={"code": coupon})
    response = client.post("/cart/checkout", data={"channel": channel})
    assert response.status_code == 302, response.text
    match = re.search(r"/orders/([A-Z0-9]+)/pay", response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


def attempt_of(order_no: str) -> PaymentAttempt:
    order = db.session.scalar(select(Order).where(Order.order_no == order_no))
    return db.session.scalar(
        select(PaymentAttempt).where(PaymentAttempt.order_id == order.id).order_by(PaymentAttempt.id.desc())
    )


def scan_at_emulator(app: Flask, qr_url: str) -> str:
    """The learner's phone opens the QR's page; returns the page's path."""
    path = "/" + qr_url.split("://", 1)[1].split("/", 1)[1]
    opened = app.test_client().get(path)
    assert opened.status_code == 200, opened.text
    return path


def pay_at_emulator(app: Flask, qr_url: str) -> None:
    """What the learner's phone does: open the QR's page and press Confirm."""
    path = scan_at_emulator(app, qr_url)
    confirmed = app.test_client().post(path + "/confirm")
    assert confirmed.status_code in (200, 302), confirmed.text
