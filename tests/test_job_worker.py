"""`flask jobs worker`'s JobWorker: RQ's SimpleWorker writing the same records to Redis
in fewer round trips (app/jobs/worker.py). Against the real Redis `make test` starts."""
from __future__ import annotations

import uuid
from typing import Iterator

import pytest
import redis
from flask import Flask
from redis.client import Pipeline
from rq import Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker
from sqlalchemy import select

from app.checkout.models import Order
from app.extensions import db
from app.jobs.queues import QUEUE_NAMES, queue_name, redis_connection
from app.jobs.worker import JobWorker
from app.payments.models import InboxNotification
from tests.alipay_oracle import notification_fields, signed_body
from tests.helpers import attempt_of, checkout, login, make_course, make_learner

REDIS_URL = "redis://127.0.0.1:6379/0"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def queued(app: Flask) -> Iterator[redis.Redis]:
    """Jobs go to Redis under a prefix of this test's own."""
    connection = redis.Redis.from_url(REDIS_URL)
    connection.ping()  # no Redis is a failure here, not a skip
    app.config.update(REDIS_URL=REDIS_URL, JOBS_QUEUE_PREFIX=f"workertest-{uuid.uuid4().hex[:8]}")
    yield connection
    for key in connection.scan_iter(f"*{app.config['JOBS_QUEUE_PREFIX']}*"):
        connection.delete(key)
    connection.close()
    for client in app.extensions.get("cashier.redis", {}).values():
        client.close()


def worker(worker_class: type[SimpleWorker]) -> SimpleWorker:
    """A worker on the app's queues, as `flask jobs worker` makes one (in an app context)."""
    return worker_class([queue_name(name) for name in QUEUE_NAMES], connection=redis_connection(),
                        serializer=JSONSerializer)


class RoundTrips:
    """Counts what a Redis client sends: one per command sent alone, one per pipeline."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, client: redis.Redis) -> None:
        self.count = 0
        send_command, send_pipeline = client.execute_command, Pipeline.execute

        def command(*args, **options):  # noqa: ANN002, ANN003, ANN202
            self.count += 1
            return send_command(*args, **options)

        def pipeline(pipe: Pipeline, *args, **options):  # noqa: ANN002, ANN003, ANN202
            self.count += 1
            return send_pipeline(pipe, *args, **options)

        monkeypatch.setattr(client, "execute_command", command)
        monkeypatch.setattr(Pipeline, "execute", pipeline)


def test_a_callback_queued_in_redis_is_booked_by_the_worker(app: Flask, client, queued) -> None:
    with app.app_context():
        course_id = make_course(10000)
        make_learner()
    login(client)
    order_no = checkout(client, [course_id])
    with app.app_context():
        out_trade_no = attempt_of(order_no).out_trade_no
    body = signed_body(notification_fields(out_trade_no, 10000))
    assert client.post("/notify/alipay", data=body, headers=FORM).text == "success"

    with app.app_context():
        [job_id] = Queue(queue_name("payments"), connection=redis_connection()).get_job_ids()
        worker(JobWorker).work(burst=True)
        job = Queue(queue_name("payments"), connection=redis_connection(),
                    serializer=JSONSerializer).fetch_job(job_id)
        assert job is not None and job.get_status() == JobStatus.FINISHED
        assert job.return_value() == "paid"
        assert db.session.scalar(select(InboxNotification.status)) == "processed"
        assert db.session.scalar(select(Order.status).where(Order.order_no == order_no)) == "paid"


def test_the_worker_sends_fewer_round_trips_per_job_than_rqs_own(app: Flask, queued, monkeypatch) -> None:
    jobs = 20
    sent = {}
    with app.app_context():
        connection = redis_connection()
        queue = Queue(queue_name("payments"), connection=connection, serializer=JSONSerializer)
        for worker_class in (SimpleWorker, JobWorker):
            for number in range(jobs):
                # A job with nothing to do (no such inbox row): the worker's own traffic.
                queue.enqueue("app.jobs.tasks.process_notification", args=[10**9 + number])
            trips = RoundTrips(monkeypatch, connection)
            worker(worker_class).work(burst=True)
            sent[worker_class] = trips.count
            monkeypatch.undo()
            assert queue.count == 0 and queue.finished_job_registry.count == jobs * len(sent)
    # RQ's heartbeats go out command by command, several per job; ours one round trip.
    assert sent[JobWorker] <= sent[SimpleWorker] - 4 * jobs, sent


def test_a_heartbeat_is_skipped_only_while_the_keys_live_as_long_as_it_would_make_them(
    app: Flask, queued, monkeypatch
) -> None:
    with app.app_context():
        job_worker = worker(JobWorker)
        job_worker.register_birth()
        connection = redis_connection()
        trips = RoundTrips(monkeypatch, connection)

        job_worker.heartbeat()
        assert trips.count == 1  # three commands, one round trip
        job_worker.heartbeat()
        assert trips.count == 1  # the keys already live that long
        # RQ's beat before a job's run gives the keys a shorter life ...
        with connection.pipeline() as pipeline:
            job_worker.heartbeat(100, pipeline=pipeline)
            pipeline.execute()
        assert connection.ttl(job_worker.key) <= 100
        trips.count = 0
        # ... so the next ordinary beat goes out, and the keys outlive a wait for a job.
        job_worker.heartbeat()
        assert trips.count == 1
        assert connection.ttl(job_worker.key) > job_worker.dequeue_timeout
        job_worker.register_death()


def test_the_worker_writes_its_state_only_when_it_changes(app: Flask, queued, monkeypatch) -> None:
    with app.app_context():
        job_worker = worker(JobWorker)
        job_worker.register_birth()
        connection = redis_connection()
        trips = RoundTrips(monkeypatch, connection)
        job_worker.set_state("idle")
        job_worker.set_state("idle")
        assert trips.count == 1
        job_worker.set_state("busy")
        assert trips.count == 2
        assert connection.hget(job_worker.key, "state") == b"busy"
        job_worker.register_death()


def test_a_failing_periodic_step_is_counted_and_the_steps_after_it_still_run(app, monkeypatch, caplog) -> None:
    from prometheus_client import REGISTRY

    from app.jobs import periodic

    def broken_rollup() -> int:
        raise RuntimeError("statement timeout")

    steps = tuple((name, broken_rollup if name == "analytics_rollup" else step) for name, step in periodic.STEPS)
    monkeypatch.setattr(periodic, "STEPS", steps)
    before = REGISTRY.get_sample_value("cashier_periodic_step_failures_total", {"step": "analytics_rollup"}) or 0
    with app.app_context():
        done = periodic.tick()
    assert "analytics_rollup" not in done
    assert "bills_due" in done and "mail_due" in done  # before and after it, all ran
    assert REGISTRY.get_sample_value("cashier_periodic_step_failures_total", {"step": "analytics_rollup"}) == before + 1
    assert "periodic step analytics_rollup failed" in caplog.text
