"""The dashboard, notification replay, failed jobs and CSRF in the back office."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker
from sqlalchemy import select

from app.admin.formatting import beijing_day_bounds
from app.checkout.models import Order
from app.extensions import db
from app.jobs.queues import queue_name
from app.payments.models import ChannelHealth, InboxNotification, Refund
from tests.admin.conftest import STAFF_EMAILS, PaidOrder, audit_rows, buy, request_refund
from tests.helpers import attempt_of, checkout, make_course, pass_second_factor

Clients = Callable[[str], FlaskClient]
REDIS_URL = "redis://127.0.0.1:6379/0"


def figure(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    assert match, element_id
    return " ".join(match.group(1).split())


def test_a_beijing_day_starts_at_16_utc_the_day_before() -> None:
    start, end = beijing_day_bounds(datetime(2026, 11, 20).date())
    assert (start, end) == (datetime(2026, 11, 19, 16), datetime(2026, 11, 20, 16))


def test_the_dashboard_shows_todays_figures(app: Flask, paid_order: PaidOrder, client_as: Clients, clock) -> None:
    buy(app, client_as("learner"), prices=(5000,))
    request_refund(app, paid_order)
    with app.app_context():
        db.session.add(ChannelHealth(channel="wechat", failures_in_window=0,
                                     unhealthy_until=clock() + timedelta(minutes=5)))
        db.session.commit()
    page = client_as("support").get("/admin/").text
    assert figure(page, "paid-orders") == "2"
    assert figure(page, "revenue") == "¥150.00"
    assert figure(page, "pending-refunds") == "1"
    assert figure(page, "failed-jobs") == "inline"
    assert figure(page, "unhealthy-channels") == "Unhealthy: wechat"

    clock.advance(hours=14)  # 02:00 UTC + 14 h = 00:00 Beijing on the next day
    # A staff session's second factor lapses after 12 hours: the next code, and back.
    lapsed = client_as("support").get("/admin/")
    pass_second_factor(client_as("support"), STAFF_EMAILS["support"], lapsed.headers["Location"])
    page = client_as("support").get("/admin/").text
    assert figure(page, "paid-orders") == "0"
    assert figure(page, "revenue") == "¥0.00"
    assert figure(page, "unhealthy-channels") == "All channels healthy."


def stuck_notification(app: Flask, client: FlaskClient) -> tuple[str, int]:
    """A pending order whose paid notification was stored but never processed (its job
    was lost): the case a replay is for."""
    with app.app_context():
        course_id = make_course(8000, slug="stuck")
    order_no = checkout(client, [course_id])
    with app.app_context():
        attempt = attempt_of(order_no)
        row = InboxNotification(
            channel=attempt.channel, dedupe_key=f"lost-{attempt.out_trade_no}",
            out_trade_no=attempt.out_trade_no, attempt_id=attempt.id, trade_state="paid",
            amount_fen=attempt.amount_fen, channel_trade_no="2026112022001400001", paid_at=None,
            raw_body='{"trade_status": "TRADE_SUCCESS"}', status="received",
        )
        db.session.add(row)
        db.session.commit()
        return order_no, row.id


def test_support_replays_a_stuck_notification(app: Flask, learner: int, client_as: Clients,
                                              staff: dict[str, int]) -> None:
    order_no, inbox_id = stuck_notification(app, client_as("learner"))
    support = client_as("support")
    page = support.get(f"/admin/inbox/{inbox_id}/")
    assert "TRADE_SUCCESS" in page.text and f'action="/admin/inbox/{inbox_id}/replay"' in page.text

    assert support.post(f"/admin/inbox/{inbox_id}/replay", data={"reason": ""}).status_code == 302
    with app.app_context():
        assert db.session.get(InboxNotification, inbox_id).status == "received"

    response = support.post(f"/admin/inbox/{inbox_id}/replay", data={"reason": "Job was lost"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(InboxNotification, inbox_id).status == "processed"
        assert db.session.scalar(select(Order.status).where(Order.order_no == order_no)) == "paid"
    assert ("notification.replay", STAFF_EMAILS["support"], "Job was lost") in audit_rows(app)

    # Again: idempotent, and audited again.
    support.post(f"/admin/inbox/{inbox_id}/replay", data={"reason": "Double check"})
    assert "already processed" in support.get(f"/admin/inbox/{inbox_id}/").text
    assert [row[0] for row in audit_rows(app, "notification_inbox")] == ["notification.replay"] * 2


def test_finance_sees_the_replay_page_but_not_the_form(app: Flask, learner: int, client_as: Clients) -> None:
    _, inbox_id = stuck_notification(app, client_as("learner"))
    page = client_as("finance").get(f"/admin/inbox/{inbox_id}/")
    assert page.status_code == 200 and "/replay" not in page.text
    assert client_as("finance").post(f"/admin/inbox/{inbox_id}/replay", data={"reason": "x"}).status_code == 403


def test_without_redis_the_failed_jobs_page_explains_the_inline_mode(client_as: Clients) -> None:
    page = client_as("admin").get("/admin/failed_jobs/")
    assert page.status_code == 200 and 'id="jobs-inline"' in page.text


@pytest.fixture
def redis_jobs(app: Flask):
    # Redis is a real part here (`make test` starts it): no Redis is a failure, not a skip.
    connection = redis.Redis.from_url(REDIS_URL)
    connection.ping()
    app.config.update(REDIS_URL=REDIS_URL, JOBS_QUEUE_PREFIX=f"admintest-{uuid.uuid4().hex[:8]}")
    yield connection
    for key in connection.scan_iter(f"*{app.config['JOBS_QUEUE_PREFIX']}*"):
        connection.delete(key)
    connection.close()


def test_an_admin_requeues_a_failed_job_and_it_is_audited(app: Flask, client_as: Clients, redis_jobs) -> None:
    with app.app_context():
        queue = Queue(queue_name("refunds"), connection=redis_jobs, serializer=JSONSerializer)
    job = queue.enqueue("builtins.int", args=["not a number"], job_id=f"{queue.name}-broken")
    SimpleWorker([queue], connection=redis_jobs, serializer=JSONSerializer).work(burst=True)
    assert job.id in queue.failed_job_registry

    admin = client_as("admin")
    page = admin.get("/admin/failed_jobs/").text
    assert job.id in page and "ValueError" in page
    assert figure(admin.get("/admin/").text, "failed-jobs") == "1"

    assert admin.post("/admin/failed_jobs/requeue", data={"queue": "refunds", "job_id": job.id,
                                                         "reason": ""}).status_code == 302
    assert job.id in queue.failed_job_registry
    assert client_as("support").post("/admin/failed_jobs/requeue", data={
        "queue": "refunds", "job_id": job.id, "reason": "retry"}).status_code == 403

    admin.post("/admin/failed_jobs/requeue", data={"queue": "refunds", "job_id": job.id, "reason": "Fixed the bug"})
    assert job.id not in queue.failed_job_registry and job.id in queue.get_job_ids()
    assert ("job.requeue", STAFF_EMAILS["admin"], "Fixed the bug") in audit_rows(app)


def csrf_token_in(page: str, action: str) -> str:
    form = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    assert form, action
    return re.search(r'name="csrf_token" value="([^"]+)"', form.group(1)).group(1)


def test_with_csrf_on_a_post_without_the_token_is_refused(app: Flask, paid_order: PaidOrder,
                                                         client_as: Clients) -> None:
    refund_id = request_refund(app, paid_order)
    support, finance = client_as("support"), client_as("finance")  # logged in before CSRF is on
    app.config["WTF_CSRF_ENABLED"] = True

    action = f"/admin/refund/{refund_id}/reject"
    assert support.post(action, data={"reason": "No"}).status_code == 400
    token = csrf_token_in(support.get(f"/admin/refund/{refund_id}/").text, action)
    assert support.post(action, data={"reason": "No", "csrf_token": token}).status_code == 302
    with app.app_context():
        assert db.session.get(Refund, refund_id).status == "rejected"

    # Flask-Admin's own forms carry the token too.
    values = {"code": "CSRF10", "kind": "percent", "percent": "10", "min_amount_yuan": "0",
              "per_user_limit": "1", "is_active": "y", "reason": "Campaign"}
    assert finance.post("/admin/coupon/new/", data=values).status_code == 400
    page = finance.get("/admin/coupon/new/").text
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    assert finance.post("/admin/coupon/new/", data={**values, "csrf_token": token}).status_code == 302
    assert ("coupon.create", STAFF_EMAILS["finance"], "Campaign") in audit_rows(app)
