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


JOB_SPECS: dict[str, JobSpec] = {
    "process_notification": JobSpec(
        function_path="app.jobs.tasks.process_notification",
        queue="payments",
        job_id=lambda inbox_id: f"process_notification-{inbox_id}",
        retry_intervals=(5, 30, 120, 600, 1800),
    ),
}

QUEUE_NAMES = ("payments", "default")


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
