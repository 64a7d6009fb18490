"""Queues by purpose, and how each job is identified and retried."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from flask import current_app
from redis import Redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer


@dataclass(frozen=True)
class JobSpec:
    function_path: str
    queue: str
    job_id: Callable[..., str]
    retry_intervals: tuple[int, ...]

    def retry(self) -> Retry:
        return Retry(max=len(self.retry_intervals), interval=list(self.retry_intervals))


def _spec(name: str, queue: str, retry_intervals: tuple[int, ...]) -> JobSpec:
    # One job per name and row id: enqueueing the same work twice keeps one job.
    return JobSpec(
        function_path=f"app.jobs.tasks.{name}",
        queue=queue,
        job_id=lambda row_id: f"{name}-{row_id}",
        retry_intervals=retry_intervals,
    )


# Channel-facing jobs retry quickly: the periodic round picks up whatever they miss.
JOB_SPECS: dict[str, JobSpec] = {
    "process_notification": _spec("process_notification", "payments", (5, 30, 120, 600, 1800)),
    "query_attempt": _spec("query_attempt", "payments", (5, 15)),
    "expire_order": _spec("expire_order", "payments", (5, 15)),
    "close_attempt": _spec("close_attempt", "payments", (5, 15, 60)),
    "execute_refund": _spec("execute_refund", "refunds", (10, 60, 300)),
    # Bookkeeping jobs: nothing outside waits on them, and the periodic round finds
    # whatever a lost or failed one left undone.
    "release_earnings": _spec("release_earnings", "default", (30, 300)),
    "close_statements": _spec("close_statements", "default", (60, 600)),
    # One channel's bill of one day, as "alipay-2026-11-20"; a failed try is recorded on
    # its run and the periodic round claims the day again later.
    "reconcile_bill": _spec("reconcile_bill", "default", (60, 600)),
    # Staff asked the channel about an attempt the bill has as paid (any status).
    "recheck_attempt": _spec("recheck_attempt", "payments", (5, 15)),
    # One outbox message; a failed send is recorded on the message and backs off there,
    # so RQ retries only a crash of the job itself.
    "deliver_email": _spec("deliver_email", "default", (60,)),
    # A platform event to one endpoint; its own retry schedule lives on the row, so RQ
    # retries only a crash (the sweep would find the delivery anyway).
    "deliver_event": _spec("deliver_event", "default", (30, 300)),
    # The renewal reminder of one enrollment, once per end date (app/renewal).
    "remind_access_ending": _spec("remind_access_ending", "default", (60, 600)),
}

QUEUE_NAMES = ("payments", "refunds", "default")


def redis_connection() -> Redis:
    connections: dict[str, Redis] = current_app.extensions.setdefault("cashier.redis", {})
    url = current_app.config["REDIS_URL"]
    if url not in connections:
        connections[url] = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    return connections[url]


def queue_name(purpose: str) -> str:
    return f"{current_app.config['JOBS_QUEUE_PREFIX']}-{purpose}"


def rq_queue(purpose: str) -> Queue:
    return Queue(queue_name(purpose), connection=redis_connection(), serializer=JSONSerializer)


def failed_job_count() -> int:
    """How many jobs sit in the failed registries of our queues; 0 without Redis (jobs
    run inline, and a failure is left to the periodic sweep). Raises RedisError."""
    if not current_app.config.get("REDIS_URL"):
        return 0
    return sum(rq_queue(purpose).failed_job_registry.count for purpose in QUEUE_NAMES)
