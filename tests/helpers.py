"""Small steps the tests share: a learner, a course, a coupon, logging in (a staff
member through the real second-factor pages), paying at the emulator."""
from __future__ import annotations

import html
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any, Iterator
from urllib.parse import urlsplit

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

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
    """Log in; a staff member then passes the second factor as a person would (setting
    it up on the first login)."""
    response = client.post("/login", data={"email": email, "password": password})
    assert response.status_code == 302, response.text
    if urlsplit(response.headers["Location"]).path in (SETUP_PATH, VERIFY_PATH):
        pass_second_factor(client, email, response.headers["Location"])


SETUP_PATH = "/second-factor/setup"
VERIFY_PATH = "/second-factor"


@dataclass
class Authenticator:
    """What a staff member keeps after setting up the second factor: the app's secret
    and the recovery codes on paper."""

    secret: str
    recovery_codes: list[str] = field(default_factory=list)
    last_step: int = -1

    def next_code(self, moment: float) -> str | None:
        """The app's code now, or the next step's (within the window) when the current
        one was used already; None when both were."""
        totp = pyotp.TOTP(self.secret)
        step = totp.timecode(moment)
        for candidate in (step, step + 1):
            if candidate > self.last_step:
                self.last_step = candidate
                return totp.at(moment, counter_offset=candidate - step)
        return None


def authenticators(app: Flask) -> dict[str, Authenticator]:
    """The staff members' authenticators by e-mail, for this app."""
    return app.extensions.setdefault("test.authenticators", {})


def app_time(app: Flask) -> float:
    """The time the app's clock shows, as a Unix timestamp."""
    clock = app.config.get("CLOCK")
    return clock().replace(tzinfo=timezone.utc).timestamp() if clock is not None else time.time()


def page_field(page: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', page) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', page)
    return html.unescape(match.group(1)) if match else ""


def element_text(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    assert match, f"no #{element_id}"
    return html.unescape(match.group(1)).strip()


def pass_second_factor(client: FlaskClient, email: str, location: str) -> None:
    """Follow the login's redirect to the second factor: on the first login, scan the
    set-up page's secret into an authenticator (pyotp), confirm a code and keep the
    recovery codes; later, enter the current code (a recovery code once both codes of
    the window were used, as the frozen test clock allows two per step)."""
    app = client.application
    page = client.get(location)
    assert page.status_code == 200, page.text
    path = urlsplit(location).path
    form = {"next": page_field(page.text, "next"), "csrf_token": page_field(page.text, "csrf_token")}
    if path == SETUP_PATH:
        keeper = Authenticator(element_text(page.text, "totp-secret").replace(" ", ""))
        authenticators(app)[email] = keeper
        done = client.post(SETUP_PATH, data={**form, "code": keeper.next_code(app_time(app))})
        assert done.status_code == 200 and 'id="recovery-codes"' in done.text, done.text
        keeper.recovery_codes = element_text(done.text, "recovery-codes").split()
        return
    keeper = authenticators(app)[email]
    code = keeper.next_code(app_time(app)) or keeper.recovery_codes.pop()
    done = client.post(VERIFY_PATH, data={**form, "code": code})
    assert done.status_code == 302, done.text


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


def at_the_pay_page(app: Flask, client: FlaskClient) -> tuple[str, str]:
    """A new ¥100 course, and a learner logged in on ``client`` who checked it out with
    Alipay: the attempt's out_trade_no and the QR code the pay page shows."""
    with app.app_context():
        course_id = make_course(10000)
        make_learner()
    login(client)
    order_no = checkout(client, [course_id])
    with app.app_context():
        attempt = attempt_of(order_no)
        return attempt.out_trade_no, attempt.qr_code


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


@contextmanager
def recorded_statements(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement the app's engine runs inside the block, in order, its
    whitespace collapsed (query-count tests)."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        seen.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def without_begin(statements: list[str]) -> list[str]:
    """The statements but SQLite's BEGIN (PostgreSQL's driver sends none of its own)."""
    return [statement for statement in statements if not statement.startswith("BEGIN")]
