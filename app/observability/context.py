"""What a log line or a job is part of: the request id, and the job being run.

Context variables, not Flask's ``g``: a job run by an RQ worker has no request, and an
inline job runs inside the request that enqueued it, so one mechanism serves both.
Nothing here imports Flask or the database.
"""
from __future__ import annotations

import re
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

# What an incoming X-Request-Id may be: short, and nothing a log reader could mistake
# for structure (no spaces, quotes, newlines). A load balancer's UUID fits.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True)
class JobContext:
    name: str  # the job function, a key of JOB_SPECS
    job_id: str


_request_id: ContextVar[str | None] = ContextVar("cashier_request_id", default=None)
_job: ContextVar[JobContext | None] = ContextVar("cashier_job", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def valid_request_id(candidate: str | None) -> str | None:
    """``candidate`` if it is an acceptable request id, else None."""
    if candidate and REQUEST_ID_PATTERN.fullmatch(candidate):
        return candidate
    return None


def current_request_id() -> str | None:
    return _request_id.get()


def current_job() -> JobContext | None:
    return _job.get()


@contextmanager
def request_id_bound(request_id: str | None) -> Iterator[None]:
    """Within the block, log records (and jobs enqueued) carry ``request_id``."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def bind_request_id(request_id: str | None) -> object:
    """Set the request id until `unbind_request_id` is given the returned token (the
    request hooks, whose start and end are two functions)."""
    return _request_id.set(request_id)


def unbind_request_id(token: object) -> None:
    try:
        _request_id.reset(token)  # type: ignore[arg-type]
    except ValueError:
        # Reset from another context than the one that set it: clear instead.
        _request_id.set(None)


@contextmanager
def job_bound(name: str, job_id: str, request_id: str | None) -> Iterator[None]:
    """Within the block, log records carry the job, and the request id it was enqueued
    under (kept as it is when the job runs inline inside that request)."""
    job_token = _job.set(JobContext(name, job_id))
    request_token = _request_id.set(request_id or _request_id.get())
    try:
        yield
    finally:
        _request_id.reset(request_token)
        _job.reset(job_token)
