"""Platform events: signing and its check, endpoint rules, the events a payment and a
refund announce, delivery to a real HTTP receiver with retries on the schedule (time
moved by the clock fixture), claims a dead worker left, and the back office.
"""
from __future__ import annotations

import ast
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.accounts.services import create_user
from app.audit.models import AuditEntry
from app.config import ConfigError, load_config
from app.checkout.models import Order
from app.extensions import db
from app.jobs.periodic import deliver_due_events
from app.jobs.tasks import execute_refund, process_notification
from app.payments import refund_workflow
from app.payments.models import InboxNotification, Refund
from app.platform_events import endpoints, services
from app.platform_events.models import (EVENT_TYPES, PlatformDelivery, PlatformDeliveryAttempt,
                                        PlatformEndpoint, PlatformEvent)
from app.platform_events.signing import signature, verify_signature
from app.platform_events.sending import PostResult, deliver, record_outcome
from tests.conftest import Clock
from tests.helpers import (app_time, attempt_of, checkout, element_text, login, make_course, make_learner,
                           pay_at_emulator)
from tests.platform_receiver import Receiver, running_receiver, verify

SECRET = "whsec_test"
SCHEDULE = (60, 300, 900, 3600, 10800, 21600, 43200)
ADMIN_EMAIL, SUPPORT_EMAIL, STAFF_PASSWORD = "ada@example.com", "sam@example.com", "staff-password-1"


# --- signing ---------------------------------------------------------------------------

def test_a_signature_verifies_and_any_change_is_refused() -> None:
    body = b'{"id":"evt_1","type":"order.paid"}'
    header = signature(SECRET, 1_700_000_000, body)
    assert header.startswith("v1=") and len(header) == 3 + 64
    assert verify_signature(SECRET, "1700000000", body, header, now=1_700_000_100)
    assert not verify_signature(SECRET, "1700000000", body + b" ", header, now=1_700_000_100)
    assert not verify_signature("whsec_other", "1700000000", body, header, now=1_700_000_100)
    assert not verify_signature(SECRET, "1700000001", body, header, now=1_700_000_100)  # timestamp is signed
    assert not verify_signature(SECRET, "1700000000", body, header, now=1_700_000_301)  # stale
    assert not verify_signature(SECRET, "1700000000", body, header, now=1_699_999_699)  # from the future
    assert not verify_signature(SECRET, "soon", body, header, now=1_700_000_000)
    assert not verify_signature(SECRET, "1700000000", body, "", now=1_700_000_000)
    # During a rotation a header may carry several signatures: one match suffices.
    assert verify_signature(SECRET, 1_700_000_000, body, f"v1=00, {header}", now=1_700_000_000)


def test_the_readme_receiver_agrees_with_the_helper() -> None:
    body = b'{"a":1}'
    headers = {"X-CourseCashier-Timestamp": "1700000000",
               "X-CourseCashier-Signature": signature(SECRET, 1_700_000_000, body)}
    assert verify(SECRET, headers, body, 1_700_000_010)
    assert not verify(SECRET, headers, b'{"a":2}', 1_700_000_010)
    assert not verify(SECRET, headers, body, 1_700_000_400)


def test_the_signing_module_imports_only_the_standard_library() -> None:
    path = Path(__file__).resolve().parent.parent / "app" / "platform_events" / "signing.py"
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "hashlib", "hmac"}


@pytest.mark.parametrize(("url", "production", "refused"), [
    ("https://lms.example.com/hooks", True, False),
    ("http://localhost:8000/hooks", True, False),
    ("http://127.0.0.1/hooks", True, False),
    ("http://lms.example.com/hooks", True, True),     # plain http over a network
    ("http://lms.example.com/hooks", False, False),   # allowed outside production
    ("ftp://lms.example.com/hooks", False, True),
    ("javascript:alert(1)", False, True),
    ("file:///etc/passwd", False, True),
    ("https://", False, True),
    ("https://user:pw@lms.example.com/", False, True),
    ("https://lms.example.com:99999/", False, True),
    ("https://lms.example.com/a b", False, True),
    ("", False, True),
])
def test_endpoint_urls(url: str, production: bool, refused: bool) -> None:
    assert (endpoints.url_problem(url, production) is not None) == refused


@pytest.mark.parametrize(("environ", "retry", "timeout"), [
    ({}, SCHEDULE, 5),
    ({"PLATFORM_EVENTS_RETRY_SECONDS": "1,2", "PLATFORM_EVENTS_TIMEOUT_SECONDS": "3"}, (1, 2), 3),
])
def test_the_delivery_settings_default_to_about_a_day(tmp_path: Path, environ: dict, retry: tuple, timeout: int) -> None:
    config = load_config(str(tmp_path), environ)
    assert (config["PLATFORM_EVENTS_RETRY_SECONDS"], config["PLATFORM_EVENTS_TIMEOUT_SECONDS"]) == (retry, timeout)


@pytest.mark.parametrize("environ", [
    {"PLATFORM_EVENTS_RETRY_SECONDS": "60,soon"},
    {"PLATFORM_EVENTS_RETRY_SECONDS": "60,0"},
    {"PLATFORM_EVENTS_TIMEOUT_SECONDS": "0"},
    {"PLATFORM_EVENTS_TIMEOUT_SECONDS": "fast"},
])
def test_bad_delivery_settings_are_refused(tmp_path: Path, environ: dict) -> None:
    with pytest.raises(ConfigError):
        load_config(str(tmp_path), environ)


# --- fixtures --------------------------------------------------------------------------

@pytest.fixture
def staff(app: Flask) -> dict[str, int]:
    with app.app_context():
        ids = {"admin": create_user(ADMIN_EMAIL, STAFF_PASSWORD, "Ada", role="admin"),
               "support": create_user(SUPPORT_EMAIL, STAFF_PASSWORD, "Sam", role="support")}
        db.session.commit()
        return ids


@pytest.fixture
def receiver(app: Flask) -> Iterator[Receiver]:
    # The receiver's clock is the app's, so the frozen test time is "now" for both.
    with running_receiver(clock=lambda: app_time(app)) as running:
        yield running


@pytest.fixture
def endpoint(app: Flask, staff: dict[str, int], receiver: Receiver) -> int:
    with app.app_context():
        created = endpoints.create_endpoint(receiver.url, "LMS", list(EVENT_TYPES), staff["admin"],
                                            production=False)
        db.session.commit()
    receiver.secret = created.secret
    return created.endpoint_id


def buy(app: Flask, client: FlaskClient, prices: tuple[int, ...] = (10000, 5000)) -> int:
    with app.app_context():
        make_learner()
        course_ids = [make_course(price, slug=f"c-{uuid.uuid4().hex[:8]}") for price in prices]
    login(client)
    order_no = checkout(client, course_ids)
    with app.app_context():
        pay_at_emulator(app, attempt_of(order_no).qr_code)
        order = db.session.scalar(select(Order).where(Order.order_no == order_no))
        assert order.status == "paid"
        return order.id


def refund_all(app: Flask, order_id: int, staff_id: int) -> int:
    with app.app_context():
        order = db.session.get(Order, order_id)
        refund_id = refund_workflow.request_refund(order_id, order.user_id, None, "Not for me")
        refund_workflow.approve_refund(refund_id, staff_id, "Within the window")
        db.session.commit()
    with app.app_context():
        execute_refund(refund_id)
    return refund_id


def events(app: Flask) -> list[dict]:
    with app.app_context():
        return [json.loads(body) for body in
                db.session.scalars(select(PlatformEvent.body).order_by(PlatformEvent.id))]


def deliveries(app: Flask) -> list[PlatformDelivery]:
    with app.app_context():
        rows = db.session.scalars(select(PlatformDelivery).order_by(PlatformDelivery.id)).all()
        db.session.expunge_all()
        return list(rows)


def tick(app: Flask) -> int:
    with app.app_context():
        return deliver_due_events()


# --- announcing ------------------------------------------------------------------------

def test_without_an_endpoint_a_payment_announces_nothing(app: Flask, client: FlaskClient) -> None:
    buy(app, client)
    assert events(app) == [] and deliveries(app) == []


def test_a_payment_and_a_refund_are_announced_and_delivered_signed(
    app: Flask, client: FlaskClient, staff: dict[str, int], endpoint: int, receiver: Receiver
) -> None:
    order_id = buy(app, client)
    with app.app_context():
        order = db.session.get(Order, order_id)
        order_no, total_fen, user_id = order.order_no, order.total_fen, order.user_id
        course_ids = [line.course_id for line in order.lines]
    paid = events(app)
    assert [event["type"] for event in paid] == ["enrollment.granted", "enrollment.granted", "order.paid"]
    order_paid = paid[-1]
    assert order_paid["id"].startswith("evt_") and order_paid["created_at"].endswith("Z")
    assert order_paid["data"] == {"order_no": order_no, "learner_id": user_id, "amount_fen": total_fen,
                                  "currency": "CNY", "course_ids": course_ids,
                                  "paid_at": order_paid["data"]["paid_at"]}
    assert [event["data"]["course_id"] for event in paid[:2]] == course_ids
    assert all(row.status == "pending" for row in deliveries(app))

    assert tick(app) == 3
    accepted = receiver.accepted()
    assert len(accepted) == 3 and all(item.verified for item in accepted)
    assert {item.event["id"] for item in accepted} == {event["id"] for event in paid}
    assert {row.status for row in deliveries(app)} == {"delivered"}
    assert tick(app) == 0  # nothing is due any more

    refund_id = refund_all(app, order_id, staff["admin"])
    refunded = events(app)[3:]
    assert sorted(event["type"] for event in refunded) == ["enrollment.revoked", "enrollment.revoked",
                                                           "order.refunded"]
    [order_refunded] = [event for event in refunded if event["type"] == "order.refunded"]
    with app.app_context():
        refund_no = db.session.get(Refund, refund_id).refund_no
    assert order_refunded["data"] == {
        "order_no": order_no, "refund_no": refund_no, "learner_id": user_id, "amount_fen": total_fen,
        "refunded_total_fen": total_fen, "order_total_fen": total_fen, "fully_refunded": True,
        "currency": "CNY", "course_ids": course_ids}
    assert tick(app) == 3
    assert sorted(item.event_type for item in receiver.accepted()[3:]) == [
        "enrollment.revoked", "enrollment.revoked", "order.refunded"]


def test_a_duplicate_callback_announces_nothing_again(
    app: Flask, client: FlaskClient, endpoint: int
) -> None:
    order_id = buy(app, client, prices=(10000,))
    with app.app_context():
        inbox_id = db.session.scalar(select(func.max(InboxNotification.id)))
        process_notification(inbox_id)  # the same notification processed once more
        assert services.announce_order_paid(order_id) is None  # the movement was announced
        assert db.session.scalar(select(func.count(PlatformEvent.id))) == 2


def test_only_subscribed_and_enabled_endpoints_get_deliveries(
    app: Flask, client: FlaskClient, staff: dict[str, int], endpoint: int
) -> None:
    with app.app_context():
        only_paid = endpoints.create_endpoint("https://lms.example.com/paid", "", ["order.paid"],
                                              staff["admin"], production=True).endpoint_id
        disabled = endpoints.create_endpoint("https://lms.example.com/off", "", ["order.paid"],
                                             staff["admin"], production=True).endpoint_id
        endpoints.set_enabled(disabled, False, staff["admin"], "paused")
        db.session.commit()
    buy(app, client, prices=(10000,))
    by_endpoint = {}
    for row in deliveries(app):
        by_endpoint.setdefault(row.endpoint_id, []).append(row.event_type)
    assert by_endpoint == {endpoint: ["enrollment.granted", "order.paid"], only_paid: ["order.paid"]}


# --- retries ---------------------------------------------------------------------------

def test_a_failing_endpoint_is_retried_on_the_schedule_and_failed_after_a_day(
    app: Flask, client: FlaskClient, endpoint: int, receiver: Receiver, clock: Clock
) -> None:
    receiver.mode = "fail"
    buy(app, client, prices=(10000,))
    started = clock()
    assert tick(app) == 2
    for wait in SCHEDULE:
        assert all(row.status == "pending" and row.next_attempt_at == clock() + timedelta(seconds=wait)
                   for row in deliveries(app))
        clock.advance(seconds=wait - 1)
        assert tick(app) == 0  # not due a second early
        clock.advance(seconds=1)
        assert tick(app) == 2
    rows = deliveries(app)
    assert {(row.status, row.attempts, row.last_http_status) for row in rows} == {("failed", 8, 500)}
    assert clock() - started == timedelta(seconds=sum(SCHEDULE))  # 22 h 21 min: about a day
    assert len(receiver.received) == 16
    with app.app_context():
        log = db.session.scalars(select(PlatformDeliveryAttempt.outcome)
                                 .where(PlatformDeliveryAttempt.delivery_id == rows[0].id)
                                 .order_by(PlatformDeliveryAttempt.number)).all()
    assert log == ["retry"] * 7 + ["failed"]
    clock.advance(days=2)
    assert tick(app) == 0


@pytest.mark.parametrize("mode", ["tamper", "stale"])
def test_a_refused_signature_is_retried_until_the_receiver_accepts(
    app: Flask, client: FlaskClient, endpoint: int, receiver: Receiver, clock: Clock, mode: str
) -> None:
    receiver.mode = mode
    buy(app, client, prices=(10000,))
    tick(app)
    assert [item.answer for item in receiver.received] == [400, 400]
    assert {(row.status, row.last_http_status) for row in deliveries(app)} == {("pending", 400)}
    receiver.mode = "ok"
    clock.advance(seconds=SCHEDULE[0])
    assert tick(app) == 2
    assert {(row.status, row.attempts) for row in deliveries(app)} == {("delivered", 2)}


def test_an_unreachable_endpoint_is_retried(app: Flask, client: FlaskClient, staff: dict[str, int]) -> None:
    with app.app_context():
        endpoints.create_endpoint("http://127.0.0.1:9/closed", "", ["order.paid"], staff["admin"], False)
        db.session.commit()
    buy(app, client, prices=(10000,))
    tick(app)
    [row] = deliveries(app)
    assert row.status == "pending" and row.last_http_status is None
    assert row.last_error.startswith("connection failed")


def test_a_claim_left_by_a_dead_worker_is_handed_back(
    app: Flask, client: FlaskClient, endpoint: int, receiver: Receiver, clock: Clock
) -> None:
    buy(app, client, prices=(10000,))
    first = deliveries(app)[0].id
    with app.app_context():
        db.session.execute(PlatformDelivery.__table__.update().where(PlatformDelivery.id == first)
                           .values(status="delivering", attempts=1, claimed_until=clock()))
        db.session.commit()
        assert deliver(first) == "not due (delivering)"
    clock.advance(seconds=1)
    assert tick(app) == 2
    assert deliveries(app)[0].status == "delivered" and deliveries(app)[0].attempts == 2
    with app.app_context():
        # The first holder's late outcome no longer applies: its claim was handed on.
        assert record_outcome(first, 1, PostResult(500, "HTTP 500", 3)) == "claim lost"
        db.session.commit()
    assert deliveries(app)[0].status == "delivered"


# --- back office -----------------------------------------------------------------------

@pytest.fixture
def as_staff(app: Flask, staff: dict[str, int]) -> Callable[[str], FlaskClient]:
    def make(email: str) -> FlaskClient:
        client = app.test_client()
        login(client, email, STAFF_PASSWORD)
        return client
    return make


def test_an_admin_creates_an_endpoint_and_sees_the_secret_once(
    app: Flask, as_staff: Callable[[str], FlaskClient]
) -> None:
    admin = as_staff(ADMIN_EMAIL)
    assert admin.get("/admin/platform_endpoint/create/").status_code == 200
    created = admin.post("/admin/platform_endpoint/create/", data={
        "url": "https://lms.example.com/hooks", "description": "LMS", "event_types": ["order.paid", "order.refunded"]})
    assert created.status_code == 200
    secret = element_text(created.text, "endpoint-secret")
    assert secret.startswith("whsec_")
    with app.app_context():
        row = db.session.scalar(select(PlatformEndpoint))
        assert row.event_types == "order.paid,order.refunded" and secret not in row.secret_ciphertext
        assert endpoints.endpoint_secret(row) == secret
        endpoint_id = row.id
    assert secret not in admin.get(f"/admin/platform_endpoint/{endpoint_id}/").text
    rotated = admin.post(f"/admin/platform_endpoint/{endpoint_id}/rotate", data={"reason": "leaked"})
    new_secret = element_text(rotated.text, "endpoint-secret")
    assert new_secret != secret
    revealed = admin.post(f"/admin/platform_endpoint/{endpoint_id}/reveal", data={"reason": "lost it"})
    assert element_text(revealed.text, "endpoint-secret") == new_secret
    admin.post(f"/admin/platform_endpoint/{endpoint_id}/disable", data={"reason": "maintenance"})
    with app.app_context():
        assert db.session.get(PlatformEndpoint, endpoint_id).enabled is False
        actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "platform_endpoint")
                                     .order_by(AuditEntry.id)).all()
    assert actions == ["platform_endpoint.create", "platform_endpoint.rotate_secret",
                       "platform_endpoint.reveal_secret", "platform_endpoint.disable"]


@pytest.mark.parametrize("form", [
    {"url": "ftp://lms.example.com/", "event_types": ["order.paid"]},
    {"url": "https://lms.example.com/", "event_types": []},
    {"url": "https://lms.example.com/", "event_types": ["order.shipped"]},
    {"url": "", "event_types": ["order.paid"]},
])
def test_a_bad_endpoint_is_refused_and_nothing_is_created(
    app: Flask, as_staff: Callable[[str], FlaskClient], form: dict
) -> None:
    answer = as_staff(ADMIN_EMAIL).post("/admin/platform_endpoint/create/", data=form)
    assert answer.status_code == 200 and 'id="endpoint-secret"' not in answer.text
    with app.app_context():
        assert db.session.scalar(select(func.count(PlatformEndpoint.id))) == 0


def test_plain_http_is_refused_in_production(app: Flask, staff: dict[str, int]) -> None:
    with app.app_context():
        with pytest.raises(endpoints.EndpointError) as refused:
            endpoints.create_endpoint("http://lms.example.com/", "", ["order.paid"], staff["admin"], True)
        assert refused.value.code == "url"


def test_support_reads_the_delivery_log_and_resends_but_cannot_manage_endpoints(
    app: Flask, client: FlaskClient, endpoint: int, receiver: Receiver, as_staff: Callable[[str], FlaskClient]
) -> None:
    support = as_staff(SUPPORT_EMAIL)
    assert support.get("/admin/platform_endpoint/").status_code == 403
    assert support.post("/admin/platform_endpoint/create/", data={}).status_code == 403
    assert support.post(f"/admin/platform_endpoint/{endpoint}/reveal", data={"reason": "x"}).status_code == 403
    buy(app, client, prices=(10000,))
    pending, event_type = deliveries(app)[0].id, deliveries(app)[0].event_type
    refused = support.post(f"/admin/platform_delivery/{pending}/resend", data={"reason": "again"})
    assert refused.status_code == 302 and len(deliveries(app)) == 2  # a pending one is not resent
    tick(app)
    listing = support.get("/admin/platform_delivery/?flt0_0=delivered")
    assert listing.status_code == 200
    detail = support.get(f"/admin/platform_delivery/{pending}/").text
    assert event_type in detail and f'action="/admin/platform_delivery/{pending}/resend"' in detail
    assert support.post(f"/admin/platform_delivery/{pending}/resend", data={"reason": " "}).status_code == 302
    assert len(deliveries(app)) == 2  # no reason, no resend
    resent = support.post(f"/admin/platform_delivery/{pending}/resend", data={"reason": "LMS lost it"})
    assert resent.status_code == 302
    rows = deliveries(app)
    assert len(rows) == 3 and rows[-1].resent_from_id == pending and rows[-1].status == "delivered"
    with app.app_context():
        original_event = db.session.get(PlatformEvent, rows[0].event_id).public_id
    # The same event (id and body) once more, under the new delivery's id.
    assert receiver.accepted()[-1].event["id"] == original_event
    assert receiver.accepted()[-1].delivery_id == str(rows[-1].id)
    assert support.post("/admin/platform_delivery/999999/resend", data={"reason": "x"}).status_code == 404
    with app.app_context():
        assert db.session.scalars(select(AuditEntry.action).where(
            AuditEntry.target_type == "platform_delivery", AuditEntry.target_id == str(pending))).all() \
            == ["platform_delivery.resend"]
