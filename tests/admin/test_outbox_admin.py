"""The e-mail outbox in the back office: support and admin read it, only admins read
bodies, and a failed message is resent with a reason that lands in the audit log."""
from __future__ import annotations

from typing import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.mail.models import OutboxMessage
from app.mail.services import queue_email
from tests.admin.conftest import audit_rows


def outbox_message(app: Flask, status: str = "failed") -> int:
    with app.app_context():
        message_id = queue_email("order-paid:77", "order_paid", "ann@example.com", "Order CC1 is paid",
                                 "Hello Ann, BODY-ONLY-FOR-ADMINS", "en")
        message = db.session.get(OutboxMessage, message_id)
        message.status, message.attempts, message.last_error = status, 6, "SMTP 550: no such user"
        db.session.commit()
        return message_id


def status_of(app: Flask, message_id: int) -> tuple[str, int]:
    with app.app_context():
        message = db.session.get(OutboxMessage, message_id)
        return message.status, message.attempts


def test_support_sees_the_outbox_and_why_a_message_failed_but_not_its_body(
        app: Flask, client_as: Callable[[str], FlaskClient]) -> None:
    message_id = outbox_message(app)
    support = client_as("support")
    listing = support.get("/admin/outbox/")
    assert listing.status_code == 200 and "ann@example.com" in listing.text and "SMTP 550" in listing.text
    assert "BODY-ONLY-FOR-ADMINS" not in listing.text
    detail = support.get(f"/admin/outbox/{message_id}/")
    assert detail.status_code == 200 and "SMTP 550" in detail.text
    assert "BODY-ONLY-FOR-ADMINS" not in detail.text
    assert "BODY-ONLY-FOR-ADMINS" in client_as("admin").get(f"/admin/outbox/{message_id}/").text
    assert client_as("finance").get("/admin/outbox/").status_code == 403
    assert client_as("finance").post(f"/admin/outbox/{message_id}/resend", data={"reason": "x"}).status_code == 403


def test_a_resend_needs_a_reason_and_is_audited(app: Flask, client_as: Callable[[str], FlaskClient]) -> None:
    message_id = outbox_message(app)
    support = client_as("support")
    refused = support.post(f"/admin/outbox/{message_id}/resend", data={"reason": "  "})
    assert refused.status_code == 302 and status_of(app, message_id) == ("failed", 6)
    resent = support.post(f"/admin/outbox/{message_id}/resend", data={"reason": "learner fixed the address"},
                          follow_redirects=True)
    assert resent.status_code == 200 and "queued again" in resent.text
    assert status_of(app, message_id) == ("pending", 0)
    assert audit_rows(app, "outbox_message") == [("outbox.resend", "sam@example.com", "learner fixed the address")]


def test_only_a_failed_message_can_be_resent(app: Flask, client_as: Callable[[str], FlaskClient]) -> None:
    message_id = outbox_message(app, status="sent")
    response = client_as("admin").post(f"/admin/outbox/{message_id}/resend", data={"reason": "again"},
                                       follow_redirects=True)
    assert response.status_code == 200 and "Only a failed message can be resent." in response.text
    assert status_of(app, message_id) == ("sent", 6) and audit_rows(app, "outbox_message") == []
    assert client_as("admin").post("/admin/outbox/999/resend", data={"reason": "none"}).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(OutboxMessage.status)) == "sent"
