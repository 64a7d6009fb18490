"""`GET /metrics` (app/observability): who may read it, and that what happens is counted
there: requests by URL rule, callbacks by channel and outcome, jobs, and the gauges read
at scrape time from the database and Redis.

The counters live in prometheus-client's registry, shared by every app of the test
process, so the tests compare a scrape before with one after; the gauges come from this
test's own database and queues, so they are read as they are."""
from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue
from rq.serializers import JSONSerializer

from app.jobs import enqueue
from app.jobs.queues import queue_name, redis_connection
from app.jobs.runner import run_job
from app.jobs.worker import JobWorker
from tests.alipay_oracle import notification_fields, signed_body
from tests.helpers import attempt_of, checkout, login, make_course, make_learner

TOKEN = "mQ7vX2pL9sK4rT8wZ3nB6yH1cF5gJ0dA"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

Samples = dict[tuple[str, frozenset], float]


def scrape(client: FlaskClient, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def place_order(app: Flask, client: FlaskClient, slug: str = "course") -> tuple[str, str]:
    """Ann's pending ¥100.00 order (Ann made on the first call): (order_no, out_trade_no)."""
    with app.app_context():
        course_id = make_course(10000, slug=slug)
        if slug == "course":
            make_learner()
    if slug == "course":
        login(client)
    order_no = checkout(client, [course_id])
    with app.app_context():
        return order_no, attempt_of(order_no).out_trade_no


# --- who may scrape ---------------------------------------------------------------------


@pytest.mark.app_config(METRICS_TOKEN=TOKEN)
def test_with_a_token_set_only_a_request_bearing_it_reads_the_metrics(client):
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Basic " + TOKEN}).status_code == 401
    # A token is asked for from private addresses too.
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.0.0.7"}).status_code == 401

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert "Set-Cookie" not in response.headers
    assert "# TYPE cashier_http_requests_total counter" in response.text


@pytest.mark.parametrize(("address", "status"), [
    ("127.0.0.1", 200), ("10.1.2.3", 200), ("192.168.0.9", 200), ("::1", 200),
    ("1.1.1.1", 403), ("8.8.8.8", 403), ("2606:4700:4700::1111", 403),
])
def test_without_a_token_only_loopback_and_private_addresses_read_the_metrics(client, address, status):
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": address}).status_code == status


def test_in_production_without_a_token_nobody_reads_the_metrics(app, client):
    app.config["APP_ENV"] = "production"  # the rule is read per request
    refused = client.get("/metrics")
    assert refused.status_code == 403 and "METRICS_TOKEN" in refused.text
    app.config["METRICS_TOKEN"] = TOKEN
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


# --- requests ---------------------------------------------------------------------------


def test_requests_are_counted_by_url_rule_never_by_path(app, client):
    order_no, _ = place_order(app, client)
    before = scrape(client)
    polled = client.get(f"/orders/{order_no}/status")
    missing = client.get("/no/such/page-CC123")
    after = scrape(client)

    route = "/orders/<order_no>/status"
    assert grew(before, after, "cashier_http_requests_total",
                route=route, method="GET", status=str(polled.status_code)) == 1
    assert grew(before, after, "cashier_http_request_duration_seconds_count", route=route) == 1
    assert grew(before, after, "cashier_http_requests_total",
                route="<unmatched>", method="GET", status=str(missing.status_code)) == 1
    labels = {label for (_, labelset) in after for label in labelset}
    assert not [label for label in labels if order_no in label[1] or "CC123" in label[1]]


def test_an_unknown_method_is_counted_as_other(client):
    before = scrape(client)
    assert client.open("/healthz", method="BREW").status_code == 405
    after = scrape(client)
    # No rule matched the method, so none is named.
    assert grew(before, after, "cashier_http_requests_total",
                route="<unmatched>", method="other", status="405") == 1


# --- callbacks ----------------------------------------------------------------------------


def test_callback_outcomes_are_counted_by_channel(app, client):
    _, out_trade_no = place_order(app, client)
    before = scrape(client)
    body = signed_body(notification_fields(out_trade_no, 10000))
    assert client.post("/notify/alipay", data=body, headers=FORM).text == "success"
    assert client.post("/notify/alipay", data=body, headers=FORM).text == "success"
    tampered = signed_body(notification_fields(out_trade_no, 10000, notify_id="n-2"), total_amount="0.01")
    assert client.post("/notify/alipay", data=tampered, headers=FORM).text == "failure"
    wrong_amount = signed_body(notification_fields(out_trade_no, 9999, notify_id="n-3"))
    assert client.post("/notify/alipay", data=wrong_amount, headers=FORM).text == "failure"
    assert client.post("/notify/alipay", data=b"{}", headers={"Content-Type": "application/json"}).text == "failure"
    after = scrape(client)

    counted = {outcome: grew(before, after, "cashier_notify_callbacks_total", channel="alipay", outcome=outcome)
               for outcome in ("accepted", "duplicate", "rejected_signature", "rejected_amount_mismatch",
                               "rejected_content_type")}
    assert counted == {"accepted": 1, "duplicate": 1, "rejected_signature": 1, "rejected_amount_mismatch": 1,
                       "rejected_content_type": 1}
    # The job (inline here) booked the first one.
    assert grew(before, after, "cashier_notify_processed_total", channel="alipay", outcome="paid") == 1
    assert grew(before, after, "cashier_notify_callbacks_total", channel="wechat", outcome="accepted") == 0


# --- jobs ---------------------------------------------------------------------------------


def test_a_job_run_is_timed_and_a_failed_one_counted(app, client, monkeypatch):
    before = scrape(client)
    with app.app_context():
        run_job("process_notification", 10**9)  # no such row: runs, does nothing

        def broken(inbox_id: int) -> None:
            raise RuntimeError("database went away")

        monkeypatch.setattr("app.jobs.tasks.process_inbox", broken)
        run_job("process_notification", 10**9)  # the inline runner logs the failure
    after = scrape(client)
    assert grew(before, after, "cashier_job_duration_seconds_count", job="process_notification") == 2
    assert grew(before, after, "cashier_job_failures_total", job="process_notification") == 1
    assert grew(before, after, "cashier_notify_processed_total", channel="unknown", outcome="missing") == 1


# --- gauges -------------------------------------------------------------------------------


def test_pending_attempts_are_counted_per_channel(app, client):
    assert value(scrape(client), "cashier_payment_attempts_pending", channel="alipay") == 0
    place_order(app, client)
    samples = scrape(client)
    assert value(samples, "cashier_payment_attempts_pending", channel="alipay") == 1
    assert ("cashier_payment_attempts_pending", frozenset({("channel", "wechat")})) in samples
    assert value(samples, "cashier_payment_attempts_pending", channel="wechat") == 0
    assert value(samples, "cashier_metrics_source_up", source="database") == 1


def test_the_success_rate_is_of_the_orders_created_in_the_last_hour(app, client, clock):
    samples = scrape(client)
    assert value(samples, "cashier_payment_orders_started_last_hour") == 0
    assert ("cashier_payment_success_ratio_last_hour", frozenset()) not in samples  # no orders, no rate

    _, paid_trade_no = place_order(app, client, "course")
    place_order(app, client, "second")
    body = signed_body(notification_fields(paid_trade_no, 10000))
    assert client.post("/notify/alipay", data=body, headers=FORM).text == "success"
    samples = scrape(client)
    assert value(samples, "cashier_payment_orders_started_last_hour") == 2
    assert value(samples, "cashier_payment_orders_succeeded_last_hour") == 1
    assert value(samples, "cashier_payment_success_ratio_last_hour") == 0.5
    assert value(samples, "cashier_payment_attempts_pending", channel="alipay") == 1

    clock.advance(minutes=61)
    samples = scrape(client)
    assert value(samples, "cashier_payment_orders_started_last_hour") == 0
    assert ("cashier_payment_success_ratio_last_hour", frozenset()) not in samples


def test_queue_depth_and_failed_jobs_are_read_from_redis(app, client, queued):
    """Against the real Redis, under this test's own queue prefix (`queued`)."""
    samples = scrape(client)
    assert value(samples, "cashier_queue_depth", queue="payments") == 0
    assert value(samples, "cashier_metrics_source_up", source="redis") == 1

    with app.app_context():
        enqueue("process_notification", 1)
        enqueue("process_notification", 2)
        enqueue("execute_refund", 3)
    samples = scrape(client)
    assert (value(samples, "cashier_queue_depth", queue="payments"),
            value(samples, "cashier_queue_depth", queue="refunds"),
            value(samples, "cashier_queue_depth", queue="default")) == (2, 1, 0)

    with app.app_context():
        # A job that fails and has no retries lands in the failed registry.
        queue = Queue(queue_name("default"), connection=redis_connection(), serializer=JSONSerializer)
        queue.enqueue("operator.truediv", args=[1, 0])
        JobWorker([queue_name("default")], connection=redis_connection(), serializer=JSONSerializer).work(burst=True)
    samples = scrape(client)
    assert value(samples, "cashier_queue_failed_jobs", queue="default") == 1
    assert value(samples, "cashier_queue_failed_jobs", queue="payments") == 0
    assert value(samples, "cashier_queue_depth", queue="payments") == 2


def test_an_unreachable_redis_is_reported_not_a_failed_scrape(app, client):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    samples = scrape(client)
    assert value(samples, "cashier_metrics_source_up", source="redis") == 0
    assert value(samples, "cashier_metrics_source_up", source="database") == 1


def test_a_worker_on_its_own_host_can_serve_its_job_metrics(app, runner, queued, monkeypatch):
    served = []
    monkeypatch.setattr("app.jobs.cli.start_http_server",
                        lambda port, addr, registry: served.append((port, addr, registry)))
    result = runner.invoke(args=["jobs", "worker", "--burst", "--metrics-port", "9101"])
    assert result.exit_code == 0, result.output
    [(port, address, registry)] = served
    assert (port, address) == (9101, "127.0.0.1")
    assert any(metric.name == "cashier_job_duration_seconds" for metric in registry.collect())
