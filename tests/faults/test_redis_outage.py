"""Redis is down while a payment callback arrives: the callback is still acknowledged and
stored, the site keeps answering, and once Redis is back the sweeper's round and a real
RQ worker settle the payment exactly once (DESIGN.md §8)."""
from __future__ import annotations

import logging
import signal
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select, text

from app.checkout.models import Order
from app.extensions import db
from app.jobs.periodic import INBOX_GRACE, tick
from app.ledger.models import JournalEntry
from app.ledger.services import unbalanced_entry_ids
from app.payments.models import InboxNotification
from tests.alipay_oracle import notification_fields, signed_body
from tests.faults.invariants import broken_invariants
from tests.faults.servers import RedisServer
from tests.test_notify import FORM, place_pending_order


def run_worker_in_burst(runner: FlaskCliRunner) -> None:
    """`flask jobs worker --burst` in this process, as an operator would run it; the
    worker's signal handlers are put back afterwards so pytest keeps its own."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = runner.invoke(args=["jobs", "worker", "--burst"])
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
    assert result.exit_code == 0, (result.output, result.exception)


def inbox_statuses(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(InboxNotification.status)))


def order_status(app: Flask, order_no: str) -> str:
    with app.app_context():
        return db.session.scalar(select(Order.status).where(Order.order_no == order_no))


def test_callback_during_redis_outage_is_stored_and_settled_once_redis_returns(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    clock,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app.config["REDIS_URL"] = redis_server.url
    app.config["JOBS_QUEUE_PREFIX"] = f"fault-{uuid.uuid4().hex[:12]}"
    order_no, out_trade_no = place_pending_order(app, client)

    redis_server.stop()
    caplog.set_level(logging.WARNING, logger="app.jobs")
    response = client.post(
        "/notify/alipay", data=signed_body(notification_fields(out_trade_no, 10000)), headers=FORM
    )
    assert (response.status_code, response.text) == (200, "success")
    assert "could not enqueue process_notification" in caplog.text  # the job was lost
    assert inbox_statuses(app) == ["received"]
    assert order_status(app, order_no) == "pending"
    assert client.get("/").status_code == 200
    poll = client.get(f"/orders/{order_no}/status")
    assert poll.status_code == 200, poll.text
    assert poll.json["status"] == "pending"

    redis_server.start()
    clock.advance(seconds=INBOX_GRACE.total_seconds() + 1)
    with app.app_context():
        assert tick()["inbox_requeued"] == 1
    assert order_status(app, order_no) == "pending"  # queued in RQ, not run inline
    run_worker_in_burst(runner)

    assert order_status(app, order_no) == "paid"
    assert inbox_statuses(app) == ["processed"]
    with app.app_context():
        payments = db.session.scalar(
            select(func.count(JournalEntry.id)).where(JournalEntry.kind == "payment")
        )
        assert payments == 1
        assert unbalanced_entry_ids() == []
        assert broken_invariants(
            lambda sql: [tuple(row) for row in db.session.execute(text(sql))]
        ) == {}
