"""Runs a job function as its own transaction: the job is a boundary and commits."""
from __future__ import annotations

import functools
import importlib
import logging
import time
from typing import Any, Callable, TypeVar

from flask import has_request_context
from rq import get_current_job

from app.extensions import db
from app.observability.context import job_bound, valid_request_id
from app.observability.metrics import observe_job

log = logging.getLogger(__name__)

# The key of an RQ job's meta that carries the id of the request that enqueued it.
REQUEST_ID_META = "request_id"

F = TypeVar("F", bound=Callable[..., Any])


def job(function: F) -> F:
    """Commit what the job did and roll back on error.

    In a worker, also leave a clean session behind, because an RQ worker runs many jobs
    in one process and app context. Inline, the job shares the request's session (a
    nested request reuses the app context), which the request itself cleans up.

    Each run is timed and a failure counted (app/observability/metrics.py), and its log
    records carry the job's name and id and the request id it was enqueued under.
    """

    name = function.__name__
    function_path = f"{function.__module__}.{function.__qualname__}"

    @functools.wraps(function)
    def wrapper(*args: Any) -> Any:
        job_id, request_id = _identity(function_path, name, args)
        started, failed = time.perf_counter(), True
        with job_bound(name, job_id, request_id):
            try:
                result = function(*args)
                db.session.commit()
                failed = False
                return result
            except BaseException:
                db.session.rollback()
                raise
            finally:
                observe_job(name, time.perf_counter() - started, failed)
                if not has_request_context():
                    db.session.remove()

    return wrapper  # type: ignore[return-value]


def _identity(function_path: str, name: str, args: tuple[Any, ...]) -> tuple[str, str | None]:
    """The job's id and the request id it carries: RQ's job when RQ runs this function,
    else (inline, or called directly) the id the job would have on a queue."""
    rq_job = get_current_job()
    if rq_job is not None and rq_job.func_name == function_path:
        return rq_job.id, valid_request_id(str((rq_job.meta or {}).get(REQUEST_ID_META) or ""))
    return "-".join([name, *(str(arg) for arg in args)]), None


def run_job(name: str, *args: Any) -> None:
    """Run a job in this process (the embedded mode). A failure is logged, not raised:
    the caller's work is committed and the sweeper will run the job again."""
    from app.jobs.queues import JOB_SPECS

    module_path, function_name = JOB_SPECS[name].function_path.rsplit(".", 1)
    function = getattr(importlib.import_module(module_path), function_name)
    try:
        function(*args)
    except Exception:  # noqa: BLE001
        log.exception("inline job %s%r failed; the sweeper will retry it", name, args)
