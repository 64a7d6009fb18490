"""Issue 11's alerts (app/alerts): each one fires when its condition is created (the
check, the dashboard, an episode opened by the periodic round and one e-mail to each
admin), and clears when the condition ends (an episode closed and one "cleared" e-mail,
which a second round does not repeat). Real rows, the real Redis for failed jobs and
the injected clock."""
from __future__ import annotations

import threading
import uuid
from datetime import date, datetime, timedelta
from typing import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker
from sqlalchemy import select

from app.accounts.services import create_user
from app.alerts.checks import Alert, Evaluation, evaluate, read_failed_job_count
from app.alerts.episodes import record_evaluation
from app.alerts.models import AlertEpisode
from app.checkout.models import Order
from app.config import ConfigError, load_config
from app.extensions import db
from app.jobs.periodic import tick
from app.jobs.queues import QUEUE_NAMES, queue_name, redis_connection
from app.jobs.worker import JobWorker
from app.mail.models import OutboxMessage
from app.payments.models import InboxNotification, PaymentAttempt
from app.reconciliation.matching import PAYMENT, DiscrepancyKind, Finding
from app.reconciliation.services import record_run
from app.timeutil import now
from tests.alipay_oracle import notification_fields, signed_body
from tests.conftest import Clock
from tests.helpers import at_the_pay_page, login, make_learner, pay_at_emulator

REDIS_URL = "redis://127.0.0.1:6379/0"
PASSWORD = "staff-password-1"
ADMIN = "ada@example.com"
OTHER_ADMIN = "abe@example.com"
SUPPORT = "sam@example.com"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    """Two admins (the e-mails go to both), a support member (who gets none), and a
    client logged in as the first admin."""
    with app.app_context():
        create_user(ADMIN, PASSWORD, "Ada", role="admin")
        create_user(OTHER_ADMIN, PASSWORD, "Abe", role="admin")
        create_user(SUPPORT, PASSWORD, "Sam", role="support")
        db.session.commit()
    client = app.test_client()
    login(client, ADMIN, PASSWORD)
    return client


@pytest.fixture
def redis_jobs(app: Flask) -> Iterator[redis.Redis]:
    """Jobs go to the real Redis under this test's own prefix; nobody works them unless
    the test runs a worker."""
    connection = redis.Redis.from_url(REDIS_URL)
    connection.ping()  # no Redis is a failure here, not a skip
    app.config.update(REDIS_URL=REDIS_URL, JOBS_QUEUE_PREFIX=f"alerttest-{uuid.uuid4().hex[:8]}")
    yield connection
    for key in connection.scan_iter(f"*{app.config['JOBS_QUEUE_PREFIX']}*"):
        connection.delete(key)
    connection.close()


def firing(app: Flask) -> dict[str, Alert]:
    with app.app_context():
        return {alert.key: alert for alert in evaluate(now(), read_failed_job_count()).firing}


def run_tick(app: Flask) -> dict[str, int]:
    with app.app_context():
        return tick()


def episodes(app: Flask) -> list[tuple[str, bool]]:
    """(key, still open) of every episode, oldest first."""
    with app.app_context():
        return [(row.key, row.cleared_at is None)
                for row in db.session.scalars(select(AlertEpisode).order_by(AlertEpisode.id))]


def alert_mail(app: Flask) -> list[tuple[str, str, str]]:
    """(kind, recipient, subject) of the alert e-mails in the outbox, oldest first."""
    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            select(OutboxMessage.kind, OutboxMessage.recipient, OutboxMessage.subject)
            .where(OutboxMessage.kind.like("alert_%")).order_by(OutboxMessage.id))]


def element_id(key: str) -> str:
    return "alert-" + key.replace(":", "-")


def assert_fires(app: Flask, admin: FlaskClient, key: str, words: str, link: str) -> None:
    alerts = firing(app)
    assert list(alerts) == [key] and words in alerts[key].message

    page = admin.get("/admin/").text
    assert 'role="alert"' in page and f'id="{element_id(key)}"' in page and 'id="no-alerts"' not in page
    item = page.split(f'id="{element_id(key)}"', 1)[1].split("</li>", 1)[0]
    assert words in item and f'href="{link}"' in item and "Since" not in item  # no round has run yet

    assert run_tick(app)["alerts"] == 1
    assert episodes(app) == [(key, True)]
    mail = alert_mail(app)
    assert sorted(recipient for _, recipient, _ in mail) == [OTHER_ADMIN, ADMIN]
    assert all(kind == "alert_fired" and words in subject for kind, _, subject in mail)
    item = admin.get("/admin/").text.split(f'id="{element_id(key)}"', 1)[1].split("</li>", 1)[0]
    assert "Since " in item

    run_tick(app)  # still firing: the same episode, no new e-mail
    assert episodes(app) == [(key, True)] and len(alert_mail(app)) == 2


def assert_clears(app: Flask, admin: FlaskClient, key: str) -> None:
    assert firing(app) == {}
    assert 'id="no-alerts"' in admin.get("/admin/").text

    assert run_tick(app)["alerts"] == 0
    assert episodes(app) == [(key, False)]
    cleared = [(recipient, subject) for kind, recipient, subject in alert_mail(app) if kind == "alert_cleared"]
    assert sorted(recipient for recipient, _ in cleared) == [OTHER_ADMIN, ADMIN]
    assert all(subject.startswith("[CourseCashier] Cleared: ") for _, subject in cleared)

    run_tick(app)
    assert len(alert_mail(app)) == 4 and episodes(app) == [(key, False)]


# --- 1. a channel silent while attempts wait ------------------------------------------


@pytest.mark.app_config(ALERT_CALLBACK_SILENCE_MIN_PENDING=1)
def test_a_channel_silent_while_an_attempt_waits_alerts_until_its_callback_arrives(
    app: Flask, clock: Clock, admin: FlaskClient
) -> None:
    _out_trade_no, qr = at_the_pay_page(app, app.test_client())

    clock.advance(minutes=9)  # the attempt has not waited the whole window yet
    assert firing(app) == {}
    clock.advance(minutes=2)
    assert_fires(app, admin, "channel_silence:alipay",
                 "No Alipay callback on record (over 10 minutes) while 1 attempt is pending",
                 "/admin/attempt/")

    pay_at_emulator(app, qr)  # the callback arrives, and the attempt is paid
    with app.app_context():
        assert db.session.scalar(select(InboxNotification.status)) == "processed"
    assert_clears(app, admin, "channel_silence:alipay")


@pytest.mark.app_config(ALERT_CALLBACK_SILENCE_MIN_PENDING=1)
def test_only_live_attempts_of_pending_orders_that_waited_the_window_count_and_a_recent_callback_silences_it(
    app: Flask, clock: Clock
) -> None:
    with app.app_context():
        learner_id = make_learner()
        waiting = add_order(learner_id, clock.current - timedelta(minutes=12), "pending", "created")
        add_order(learner_id, clock.current - timedelta(minutes=12), "paid", "created", channel="wechat")
        add_order(learner_id, clock.current - timedelta(minutes=3), "pending", "created", channel="wechat")
        add_order(learner_id, clock.current - timedelta(minutes=20), "pending", "created")  # past its deadline
        db.session.commit()
    alerts = firing(app)
    assert list(alerts) == ["channel_silence:alipay"]  # WeChat's are superseded or too young
    assert alerts["channel_silence:alipay"].message.endswith("while 1 attempt is pending")

    with app.app_context():
        attempt = db.session.scalar(select(PaymentAttempt).where(PaymentAttempt.order_id == waiting))
        db.session.add(InboxNotification(
            channel="alipay", dedupe_key="old", out_trade_no=attempt.out_trade_no, trade_state="closed",
            amount_fen=100, channel_trade_no="T1", raw_body="", status="processed",
            received_at=clock.current - timedelta(minutes=17)))
        db.session.commit()
    assert firing(app)["channel_silence:alipay"].message == (
        "No Alipay callback for 17 minutes while 1 attempt is pending")
    clock.advance(minutes=-8)  # a callback 9 minutes ago: within the window
    assert "channel_silence:alipay" not in firing(app)


def test_a_channel_is_called_silent_only_when_enough_attempts_wait(app: Flask, clock: Clock) -> None:
    """By default three waiting attempts, not one or two learners who walked away."""
    with app.app_context():
        learner_id = make_learner()
        for _ in range(2):
            add_order(learner_id, clock.current - timedelta(minutes=12), "pending", "created")
        db.session.commit()
    assert firing(app) == {}
    with app.app_context():
        add_order(learner_id, clock.current - timedelta(minutes=11), "pending", "created")
        db.session.commit()
    assert firing(app)["channel_silence:alipay"].message.endswith("while 3 attempts are pending")


def test_a_silence_holds_until_the_channel_speaks_not_until_its_qr_codes_expire(
    app: Flask, clock: Clock, admin: FlaskClient
) -> None:
    with app.app_context():
        learner_id = make_learner()
        for _ in range(3):
            add_order(learner_id, clock.current - timedelta(minutes=11), "pending", "created")
        db.session.commit()
    assert run_tick(app)["alerts"] == 1
    clock.advance(minutes=5)  # the three QR codes are past their deadline; no callback came
    assert list(firing(app)) == ["channel_silence:alipay"]
    run_tick(app)
    assert episodes(app) == [("channel_silence:alipay", True)] and len(alert_mail(app)) == 2
    with app.app_context():
        db.session.add(InboxNotification(
            channel="alipay", dedupe_key="late", out_trade_no="T-late", trade_state="closed", amount_fen=100,
            channel_trade_no="T2", raw_body="", status="processed", received_at=clock.current))
        db.session.commit()
    clock.advance(seconds=30)
    assert firing(app) == {}
    run_tick(app)
    assert episodes(app) == [("channel_silence:alipay", False)]


# --- 2. the success rate of the last hour ---------------------------------------------


def add_order(user_id: int, created_at: datetime, order_status: str, attempt_status: str | None,
              channel: str = "alipay") -> int:
    """An order (and its attempt, unless ``attempt_status`` is None) created at ``created_at``."""
    order = Order(order_no=uuid.uuid4().hex[:20].upper(), user_id=user_id, status=order_status,
                  subtotal_fen=100, discount_fen=0, tax_fen=0, total_fen=100,
                  expires_at=created_at + timedelta(minutes=15), created_at=created_at)
    db.session.add(order)
    db.session.flush()
    if attempt_status is not None:
        db.session.add(PaymentAttempt(order_id=order.id, channel=channel, out_trade_no=uuid.uuid4().hex,
                                      amount_fen=100, status=attempt_status,
                                      expires_at=order.expires_at, created_at=created_at))
    return order.id


def test_a_low_success_rate_of_enough_orders_alerts_until_the_hour_moves_on(
    app: Flask, clock: Clock, admin: FlaskClient
) -> None:
    # 02:00 UTC is 10:00 in Beijing; the hour read is the one that ended ORDER_TTL (15
    # minutes) ago: orders created 08:45 to 09:45 Beijing.
    created = clock.current - timedelta(minutes=45)
    with app.app_context():
        learner_id = make_learner()
        for _ in range(9):
            add_order(learner_id, created, "paid", "succeeded")
        for _ in range(10):
            add_order(learner_id, created, "closed", "closed")
        add_order(learner_id, created, "closed", None)  # never started a payment: not counted
        add_order(learner_id, clock.current - timedelta(minutes=5), "closed", "closed")  # too recent
        add_order(learner_id, clock.current - timedelta(minutes=80), "closed", "closed")  # too old
        db.session.commit()
    assert firing(app) == {}  # 19 orders started a payment: too few to mean anything

    with app.app_context():
        add_order(learner_id, created, "closed", "failed")
        db.session.commit()
    assert_fires(app, admin, "success_rate",
                 "Payment success rate 45.00 % (9 of 20 orders created 08:45–09:45 Beijing), below 80.00 %",
                 "/admin/analytics/")

    # Its figures are the analytics page's: support sees neither the alert nor its history.
    support = app.test_client()
    login(support, SUPPORT, PASSWORD)
    dashboard_page, history = support.get("/admin/"), support.get("/admin/alert/")
    assert dashboard_page.status_code == history.status_code == 200
    assert 'id="no-alerts"' in dashboard_page.text and "Payment success rate" not in history.text
    assert "Payment success rate" in admin.get("/admin/alert/").text
    with app.app_context():
        episode_id = db.session.scalar(select(AlertEpisode.id))
    assert "Payment success rate" not in support.get(f"/admin/alert/details/?id={episode_id}",
                                                     follow_redirects=True).text

    clock.advance(minutes=61)  # those orders leave the hour; too few others to tell
    assert firing(app) == {}
    run_tick(app)  # an unknown rate neither clears the episode nor e-mails again
    assert episodes(app) == [("success_rate", True)] and len(alert_mail(app)) == 2
    with app.app_context():
        for _ in range(20):
            add_order(learner_id, clock.current - timedelta(minutes=45), "paid", "succeeded")
        db.session.commit()
    assert_clears(app, admin, "success_rate")


def test_a_success_rate_at_the_threshold_does_not_alert(app: Flask, clock: Clock) -> None:
    created = clock.current - timedelta(minutes=30)
    with app.app_context():
        learner_id = make_learner()
        for index in range(20):
            add_order(learner_id, created, *(("paid", "succeeded") if index < 16 else ("closed", "closed")))
        db.session.commit()
    assert firing(app) == {}  # 16 of 20: exactly 80.00 %
    app.config["ALERT_SUCCESS_RATE_BPS"] = 8001
    assert list(firing(app)) == ["success_rate"]


# --- 3. failed jobs ---------------------------------------------------------------------


def test_a_failed_job_alerts_until_an_admin_requeues_it(app: Flask, admin: FlaskClient,
                                                       redis_jobs: redis.Redis) -> None:
    with app.app_context():
        queue = Queue(queue_name("refunds"), connection=redis_jobs, serializer=JSONSerializer)
    job = queue.enqueue("builtins.int", args=["not a number"], job_id=f"{queue.name}-broken")
    SimpleWorker([queue], connection=redis_jobs, serializer=JSONSerializer).work(burst=True)
    assert job.id in queue.failed_job_registry

    assert_fires(app, admin, "failed_jobs", "1 failed job not yet requeued or removed", "/admin/failed_jobs/")

    # Redis unreachable: failed jobs are unknown, so that episode is neither closed nor
    # announced as cleared; the queue's own alert fires, the dashboard still shows the
    # database's alerts, and the round delivers the alert e-mails itself.
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    assert list(firing(app)) == ["queue_unreachable"]
    run_tick(app)
    assert episodes(app) == [("failed_jobs", True), ("queue_unreachable", True)]
    page = admin.get("/admin/").text
    assert "Redis unavailable" in page and 'id="alert-queue_unreachable"' in page
    with app.app_context():
        sent = db.session.execute(select(OutboxMessage.status).where(OutboxMessage.subject.contains("Redis"))).all()
    assert sent == [("sent",), ("sent",)]  # one to each admin, with no worker to send them
    app.config["REDIS_URL"] = REDIS_URL
    run_tick(app)
    assert episodes(app) == [("failed_jobs", True), ("queue_unreachable", False)]

    answer = admin.post("/admin/failed_jobs/requeue", data={"queue": "refunds", "job_id": job.id,
                                                           "reason": "Fixed the bug"})
    assert answer.status_code == 302 and job.id not in queue.failed_job_registry
    assert firing(app) == {}
    run_tick(app)
    assert episodes(app) == [("failed_jobs", False), ("queue_unreachable", False)]


# --- 4. reconciliation discrepancies ----------------------------------------------------


def test_an_unresolved_discrepancy_alerts_until_finance_resolves_it(app: Flask, admin: FlaskClient) -> None:
    missing = Finding(DiscrepancyKind.MISSING_OURS, PAYMENT, "ALERT-TRADE", theirs_amount_fen=100,
                      theirs_state="succeeded", theirs_fee_fen=1)
    with app.app_context():
        [discrepancy_id] = record_run("alipay", date(2026, 11, 19), 1, [missing], now()).discrepancy_ids
        db.session.commit()

    assert_fires(app, admin, "discrepancies", "1 reconciliation discrepancy unresolved",
                 "/admin/reconciliation/?status=open")

    with app.app_context():
        body = db.session.scalar(select(OutboxMessage.body_text).where(OutboxMessage.recipient == ADMIN))
    assert "Hello Ada," in body and "1 reconciliation discrepancy unresolved" in body
    assert "Where to act: http://cashier.test/admin/reconciliation/?status=open" in body

    answer = admin.post(f"/admin/reconciliation/{discrepancy_id}/resolve",
                        data={"resolution": "accepted", "reason": "known incident"})
    assert answer.status_code == 302
    assert_clears(app, admin, "discrepancies")


# --- 5. callbacks left unprocessed ------------------------------------------------------


def test_a_callback_unprocessed_for_five_minutes_alerts_until_a_worker_books_it(
    app: Flask, clock: Clock, admin: FlaskClient, redis_jobs: redis.Redis
) -> None:
    learner = app.test_client()
    out_trade_no, _qr = at_the_pay_page(app, learner)
    body = signed_body(notification_fields(out_trade_no, 10000))
    assert learner.post("/notify/alipay", data=body, headers=FORM).text == "success"  # queued; no worker runs

    clock.advance(minutes=5)
    assert firing(app) == {}  # five minutes old, not older
    clock.advance(seconds=61)
    assert_fires(app, admin, "stale_inbox", "1 callback not processed, the oldest received 6 minutes ago",
                 "/admin/inbox/")

    with app.app_context():  # the worker is back
        JobWorker([queue_name(name) for name in QUEUE_NAMES], connection=redis_connection(),
                  serializer=JSONSerializer).work(burst=True)
        assert db.session.scalar(select(InboxNotification.status)) == "processed"
    assert_clears(app, admin, "stale_inbox")


# --- episodes ---------------------------------------------------------------------------


def test_the_emails_can_be_switched_off(app: Flask, admin: FlaskClient) -> None:
    app.config["ALERT_EMAILS_ENABLED"] = False
    missing = Finding(DiscrepancyKind.MISSING_OURS, PAYMENT, "QUIET", theirs_amount_fen=100,
                      theirs_state="succeeded", theirs_fee_fen=1)
    with app.app_context():
        record_run("alipay", date(2026, 11, 19), 1, [missing], now())
        db.session.commit()
    run_tick(app)
    assert episodes(app) == [("discrepancies", True)] and alert_mail(app) == []


def test_rounds_at_once_open_one_episode_and_close_it_once(app: Flask, is_postgres: bool) -> None:
    """Several rounds record the same evaluation at the same time, each in its own
    transaction: one opens the episode; later, one closes it."""
    if not is_postgres:
        pytest.skip("concurrency is tested against PostgreSQL (SQLite writes one at a time)")
    alert = Alert("discrepancies", "discrepancies", "warning", "1 reconciliation discrepancy unresolved",
                  "reconciliation.index", "Reconciliation queue")
    moment = datetime(2026, 11, 20, 2, 0)

    def race(evaluation: Evaluation) -> list[tuple[int, int]]:
        barrier = threading.Barrier(4)
        results: list[tuple[int, int]] = []

        def one_round() -> None:
            with app.app_context():
                db.session.execute(select(AlertEpisode.id)).all()  # the transaction has begun
                barrier.wait()
                changes = record_evaluation(evaluation, moment)
                db.session.commit()
                results.append((len(changes.opened), len(changes.cleared)))
                db.session.remove()

        threads = [threading.Thread(target=one_round) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    assert sorted(race(Evaluation((alert,)))) == [(0, 0)] * 3 + [(1, 0)]
    assert episodes(app) == [("discrepancies", True)]
    assert sorted(race(Evaluation(()))) == [(0, 0)] * 3 + [(0, 1)]
    assert episodes(app) == [("discrepancies", False)]


def test_a_silence_window_no_qr_lives_through_stops_the_start(tmp_path) -> None:
    with pytest.raises(ConfigError, match="ALERT_CALLBACK_SILENCE_MINUTES"):
        load_config(str(tmp_path), {"ALERT_CALLBACK_SILENCE_MINUTES": "15"})
    assert load_config(str(tmp_path), {"ALERT_CALLBACK_SILENCE_MINUTES": "14"})["ALERT_CALLBACK_SILENCE_MINUTES"] == 14
