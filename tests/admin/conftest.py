"""Back-office fixtures: staff users of each role, clients logged in as them, and a
paid order with a refund request to decide."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.accounts.services import create_user
from app.audit.models import AuditEntry
from app.checkout.models import Order
from app.extensions import db
from app.payments import refund_workflow
from app.payments.models import Refund
from tests.helpers import attempt_of, checkout, login, make_course, make_learner, pay_at_emulator

PASSWORD = "staff-password-1"
LEARNER_EMAIL = "ann@example.com"
STAFF_EMAILS = {
    "support": "sam@example.com",
    "support2": "sue@example.com",
    "finance": "fay@example.com",
    "finance2": "fred@example.com",
    "admin": "ada@example.com",
    "instructor": "ivan@example.com",
}

@dataclass(frozen=True)
class PaidOrder:
    order_id: int
    order_no: str
    learner_id: int
    total_fen: int
    course_ids: list[int]


@pytest.fixture
def staff(app: Flask) -> dict[str, int]:
    """User ids by name; the name without a digit is the role."""
    with app.app_context():
        ids = {
            name: create_user(email, PASSWORD, name.title(), role=name.rstrip("2"))
            for name, email in STAFF_EMAILS.items()
        }
        db.session.commit()
    return ids


@pytest.fixture
def client_as(app: Flask, staff: dict[str, int]) -> Callable[[str], FlaskClient]:
    """A test client logged in as a staff name from STAFF_EMAILS, or "learner"."""
    clients: dict[str, FlaskClient] = {}

    def make(name: str) -> FlaskClient:
        if name not in clients:
            client = app.test_client()
            if name == "learner":
                login(client, LEARNER_EMAIL)
            elif name != "anonymous":
                login(client, STAFF_EMAILS[name], PASSWORD)
            clients[name] = client
        return clients[name]

    return make


def buy(app: Flask, client: FlaskClient, prices: tuple[int, ...] = (10000,)) -> PaidOrder:
    """The learner (logged in on ``client``) buys and pays courses at these prices."""
    with app.app_context():
        course_ids = [make_course(price, slug=f"course-{uuid.uuid4().hex[:8]}") for price in prices]
    order_no = checkout(client, course_ids)
    with app.app_context():
        qr = attempt_of(order_no).qr_code
    assert qr
    pay_at_emulator(app, qr)
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.order_no == order_no))
        assert order.status == "paid"
        return PaidOrder(order.id, order.order_no, order.user_id, order.total_fen, course_ids)


@pytest.fixture
def learner(app: Flask) -> int:
    with app.app_context():
        return make_learner(LEARNER_EMAIL)


@pytest.fixture
def paid_order(app: Flask, learner: int, client_as: Callable[[str], FlaskClient]) -> PaidOrder:
    return buy(app, client_as("learner"))


def request_refund(app: Flask, order: PaidOrder, line_ids: list[int] | None = None) -> int:
    with app.app_context():
        refund_id = refund_workflow.request_refund(order.order_id, order.learner_id, line_ids,
                                                   "The course is not for me")
        db.session.commit()
        return refund_id


def refund_status(app: Flask, refund_id: int) -> str:
    with app.app_context():
        return db.session.get(Refund, refund_id).status


def audit_rows(app: Flask, target_type: str | None = None) -> list[tuple[str, str, str]]:
    """(action, actor e-mail, reason) of the audit log, oldest first."""
    with app.app_context():
        query = select(AuditEntry).order_by(AuditEntry.id)
        if target_type is not None:
            query = query.where(AuditEntry.target_type == target_type)
        return [(row.action, row.actor_email, row.reason) for row in db.session.scalars(query)]
