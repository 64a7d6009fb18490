"""Log records with their request id and job, as JSON in production (README "Monitoring").

One handler on the root logger, writing to standard error: JSON objects, one a line
(``LOG_FORMAT=json``, production's default), or text for people (the default
elsewhere). Either way each record carries the request id and, inside a job, the
job's name and id (`ContextFilter`). Making another app replaces the handler rather
than adding a second one (the tests make many apps in one process).
"""
from __future__ import annotations

import logging
import sys
from typing import Any, Mapping

from flask.logging import default_handler
from pythonjsonlogger.json import JsonFormatter

from app.observability.context import current_job, current_request_id

JSON_FIELDS = ("levelname", "name", "message")
JSON_RENAMES = {"levelname": "level", "name": "logger"}


class ContextFilter(logging.Filter):
    """Puts ``request_id`` on every record (None outside a request or job), and
    ``job`` and ``job_id`` on a job's records."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        job = current_job()
        if job is not None:
            record.job = job.name
            record.job_id = job.job_id
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request id] [job id] message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(context)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        tags = [value for value in (getattr(record, "request_id", None), getattr(record, "job_id", None)) if value]
        record.context = "".join(f"[{tag}] " for tag in tags)
        return super().format(record)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (a test runner, or a
    process manager, may replace it after the handler was made)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        # Every other attribute on the record (request_id, job, job_id, a logger
        # call's `extra`) becomes a key of the object too.
        return JsonFormatter(list(JSON_FIELDS), rename_fields=dict(JSON_RENAMES), timestamp=True)
    return TextFormatter()


def configure_logging(config: Mapping[str, Any], app_name: str) -> logging.Handler:
    """Install (or replace) the root handler; returns it."""
    level = logging.getLevelName(config["LOG_LEVEL"])
    handler = StderrHandler()
    handler.setLevel(level)
    handler.setFormatter(make_formatter(config["LOG_FORMAT"]))
    handler.addFilter(ContextFilter())
    handler.set_name("cashier")
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.get_name() == "cashier"]:
        root.removeHandler(previous)
    root.addHandler(handler)
    # Only ever lowered: a host (the test suite) that logs more keeps doing so.
    if root.getEffectiveLevel() > level:
        root.setLevel(level)
    # Flask's own handler on the app's logger would print each record a second time.
    logging.getLogger(app_name).removeHandler(default_handler)
    return handler
