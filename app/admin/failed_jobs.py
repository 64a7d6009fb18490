"""Failed RQ jobs, for the back office: listing and requeueing.

Only with REDIS_URL; without it jobs run inline after commit and a failure is left
to the periodic sweep (which re-runs unprocessed inbox rows and due refunds).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from rq.job import Job

from app.audit.services import record
from app.jobs.queues import QUEUE_NAMES, queue_name, rq_queue

MAX_LISTED = 200


class FailedJobError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FailedJob:
    queue: str  # the purpose ("payments"), not the prefixed Redis name
    queue_name: str
    job_id: str
    function: str
    args: str
    ended_at: datetime | None
    error: str  # the last line of the traceback: no payloads, no secrets


def uses_redis() -> bool:
    return bool(current_app.config.get("REDIS_URL"))


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _error_of(job: Job) -> str:
    result = job.latest_result()
    return _last_line(result.exc_string if result is not None else None)


def failed_jobs() -> list[FailedJob]:
    if not uses_redis():
        return []
    found: list[FailedJob] = []
    for purpose in QUEUE_NAMES:
        queue = rq_queue(purpose)
        registry = queue.failed_job_registry
        ids = registry.get_job_ids(0, MAX_LISTED - 1, desc=True)
        for job in Job.fetch_many(ids, connection=queue.connection, serializer=queue.serializer):
            if job is None:
                continue
            found.append(FailedJob(
                queue=purpose, queue_name=queue_name(purpose), job_id=job.id,
                function=(job.func_name or "").rsplit(".", 1)[-1],
                args=", ".join(str(arg) for arg in job.args),
                ended_at=job.ended_at, error=_error_of(job),
            ))
    return found


def requeue(purpose: str, job_id: str, staff_id: int, reason: str) -> None:
    """Put a failed job back on its queue under the same id (jobs are idempotent).

    The audit entry is flushed before RQ is asked; the caller commits only after this
    returns, so the log never claims a requeue that did not happen.
    """
    text = " ".join((reason or "").split())
    if not text:
        raise FailedJobError("Please give a reason.")
    if purpose not in QUEUE_NAMES or not uses_redis():
        raise FailedJobError("No such queue.")
    registry = rq_queue(purpose).failed_job_registry
    if job_id not in registry:
        raise FailedJobError("This job is no longer in the failed list.")
    record(staff_id, "job.requeue", "rq_job", job_id, text,
           {"queue": purpose, "registry": "failed"}, {"queue": purpose, "registry": "queued"})
    registry.requeue(job_id)
