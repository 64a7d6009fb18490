"""Log lines (app/observability/logs.py): JSON objects in production, text elsewhere,
each carrying the request id, which travels from a request into the jobs it enqueues,
inline or through RQ."""
from __future__ import annotations

import json
import logging
import re

import pytest
from rq.serializers import JSONSerializer

from app.config import load_config
from app.jobs.queues import QUEUE_NAMES, queue_name, redis_connection
from app.jobs.runner import run_job
from app.jobs.worker import JobWorker
from app.observability.context import job_bound, request_id_bound
from app.observability.logs import ContextFilter, make_formatter
from tests.alipay_oracle import notification_fields, signed_body
from tests.helpers import at_the_pay_page

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def json_records(text: str) -> list[dict]:
    """Every line of ``text`` that is a JSON object (other output is left out)."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def test_production_logs_json_and_development_text_by_default(tmp_path):
    assert load_config(str(tmp_path), environ={"APP_ENV": "production"})["LOG_FORMAT"] == "json"
    assert load_config(str(tmp_path), environ={})["LOG_FORMAT"] == "text"
    assert load_config(str(tmp_path), environ={"LOG_FORMAT": "json"})["LOG_FORMAT"] == "json"


def test_a_json_record_has_the_agreed_fields():
    record = logging.LogRecord("app.payments.views", logging.WARNING, __file__, 1, "refused %s", ("x",), None)
    with request_id_bound("req-1"), job_bound("process_notification", "process_notification-7", None):
        ContextFilter().filter(record)
    line = json.loads(make_formatter("json").format(record))
    assert line["level"] == "WARNING" and line["logger"] == "app.payments.views"
    assert line["message"] == "refused x" and line["request_id"] == "req-1"
    assert (line["job"], line["job_id"]) == ("process_notification", "process_notification-7")
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line["timestamp"])


def test_a_text_record_shows_the_request_id():
    record = logging.LogRecord("app.jobs", logging.INFO, __file__, 1, "hello", (), None)
    with request_id_bound("req-2"):
        ContextFilter().filter(record)
    assert "INFO app.jobs [req-2] hello" in make_formatter("text").format(record)


@pytest.mark.parametrize("offered", ["lb-7f3a9c", "4bf92f3577b34da6a3ce929d0e0e4736", "Root-1.abc:def_2"])
def test_a_valid_incoming_request_id_is_kept_and_echoed(client, offered):
    assert client.get("/healthz", headers={"X-Request-Id": offered}).headers["X-Request-Id"] == offered


@pytest.mark.parametrize("offered", ["", "has space", "x" * 65, "tab\there", "semi;colon", '"quoted"', "ünï"])
def test_an_unfit_request_id_is_replaced_by_a_new_one(client, offered):
    echoed = client.get("/healthz", headers={"X-Request-Id": offered}).headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)


def test_every_response_gets_a_new_id_without_one_offered(client):
    first, second = (client.get("/healthz").headers["X-Request-Id"] for _ in range(2))
    assert first != second and re.fullmatch(r"[0-9a-f]{32}", first)


@pytest.mark.app_config(LOG_FORMAT="json")
def test_a_requests_log_lines_are_json_with_its_request_id(app, client, capsys):
    capsys.readouterr()
    response = client.post("/notify/alipay", data=b"sign=bad", headers={**FORM, "X-Request-Id": "req-json-1"})
    assert response.text == "failure" and response.headers["X-Request-Id"] == "req-json-1"
    [refusal] = [record for record in json_records(capsys.readouterr().err)
                 if record["logger"] == "app.payments.views"]
    assert refusal["request_id"] == "req-json-1" and refusal["level"] == "WARNING"
    assert refusal["message"].startswith("rejected alipay notification")
    assert "job" not in refusal


@pytest.mark.app_config(LOG_FORMAT="json")
def test_an_inline_job_logs_under_the_request_that_enqueued_it(app, client, capsys):
    out_trade_no, _qr = at_the_pay_page(app, client)
    capsys.readouterr()
    body = signed_body(notification_fields(out_trade_no, 10000))
    response = client.post("/notify/alipay", data=body, headers={**FORM, "X-Request-Id": "req-inline-1"})
    assert response.text == "success"
    [booked] = [record for record in json_records(capsys.readouterr().err) if record["logger"] == "app.jobs.tasks"]
    assert booked["request_id"] == "req-inline-1"
    assert booked["message"] == "notification 1: paid"
    assert (booked["job"], booked["job_id"]) == ("process_notification", "process_notification-1")


@pytest.mark.app_config(LOG_FORMAT="json")
def test_an_rq_job_logs_under_the_request_that_enqueued_it(app, client, queued, capsys):
    out_trade_no, _qr = at_the_pay_page(app, client)
    body = signed_body(notification_fields(out_trade_no, 10000))
    response = client.post("/notify/alipay", data=body, headers={**FORM, "X-Request-Id": "req-rq-1"})
    assert response.text == "success"
    capsys.readouterr()
    with app.app_context():  # as `flask jobs worker` runs: no request
        JobWorker([queue_name(name) for name in QUEUE_NAMES], connection=redis_connection(),
                  serializer=JSONSerializer).work(burst=True)
    [booked] = [record for record in json_records(capsys.readouterr().err) if record["logger"] == "app.jobs.tasks"]
    assert booked["request_id"] == "req-rq-1"
    assert booked["message"] == "notification 1: paid"
    assert booked["job"] == "process_notification"
    assert booked["job_id"] == f"{app.config['JOBS_QUEUE_PREFIX']}-process_notification-1"


def test_a_job_outside_any_request_logs_without_a_request_id(app, caplog):
    context = ContextFilter()
    caplog.handler.addFilter(context)
    try:
        with app.app_context(), caplog.at_level(logging.INFO, logger="app.jobs.tasks"):
            run_job("query_attempt", 10**9)  # the scheduler's kind of run: no request
    finally:
        caplog.handler.removeFilter(context)
    [record] = [record for record in caplog.records if record.name == "app.jobs.tasks"]
    assert record.request_id is None
    assert (record.job, record.job_id) == ("query_attempt", f"query_attempt-{10**9}")
