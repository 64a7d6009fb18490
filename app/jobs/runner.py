"""Runs a job function as its own transaction: the job is a boundary and commits."""
from __future__ import annotations

import functools
import importlib
import logging
from typing import Any, Callable, TypeVar

from flask import has_request_context

from app.extensions import db

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def job(function: F) -> F:
    """Commit what the job did and roll back on error.

    In a worker, also leave a clean session behind, because an RQ worker runs many jobs
    in one process and app context. Inline, the job shares the request's session (a
    nested request reuses the app context), which the request itself cleans up.
    """

    @functools.wraps(function)
    def wrapper(*args: Any) -> Any:
        try:
            result = function(*args)
            db.session.commit()
            return result
        except BaseException:
            db.session.rollback()
            raise
        finally:
            if not has_request_context():
                db.session.remove()

    return wrapper  # type: ignore[return-value]


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
