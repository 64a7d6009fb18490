"""The counters and histograms processes record as they work (README "Monitoring").

Made on first use, once per process, in prometheus-client's default registry (metric
names are unique per registry, and the tests make many apps in one process). With
``PROMETHEUS_MULTIPROC_DIR`` set before the process starts, prometheus-client keeps
each process's values in files there instead, and `/metrics` adds them up
(`exposition_registry`). Label values are bounded: a route's URL rule, never its path.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

UNMATCHED_ROUTE = "<unmatched>"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Requests are mostly milliseconds; a checkout waits on the channel for up to its timeout.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class Metrics:
    requests: Counter
    request_seconds: Histogram
    callbacks: Counter
    notifications_processed: Counter
    job_seconds: Histogram
    job_failures: Counter
    periodic_failures: Counter


@functools.cache
def metrics() -> Metrics:
    return Metrics(
        requests=Counter(
            "cashier_http_requests", "HTTP requests answered, by URL rule, method and status.",
            ["route", "method", "status"],
        ),
        request_seconds=Histogram(
            "cashier_http_request_duration_seconds", "Time to answer a request, by URL rule.",
            ["route"], buckets=REQUEST_BUCKETS,
        ),
        callbacks=Counter(
            "cashier_notify_callbacks",
            "Channel callbacks (POST /notify/<channel>) by channel and what we answered them.",
            ["channel", "outcome"],
        ),
        notifications_processed=Counter(
            "cashier_notify_processed",
            "Stored channel notifications processed by the job, by channel and outcome.",
            ["channel", "outcome"],
        ),
        job_seconds=Histogram(
            "cashier_job_duration_seconds", "Time a job took, failed or not, by job.",
            ["job"], buckets=JOB_BUCKETS,
        ),
        job_failures=Counter("cashier_job_failures", "Job runs that raised, by job.", ["job"]),
        periodic_failures=Counter("cashier_periodic_step_failures",
                                  "Steps of the periodic round that raised, by step.", ["step"]),
    )


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def process_registry() -> CollectorRegistry:
    """What this deployment's processes recorded: every process's files in multiprocess
    mode, else this process's default registry."""
    folder = multiprocess_dir()
    if folder is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)
    return registry


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    recorded = metrics()
    method = method if method in KNOWN_METHODS else "other"
    recorded.requests.labels(route, method, str(status)).inc()
    recorded.request_seconds.labels(route).observe(seconds)


def count_callback(channel: str, outcome: str) -> None:
    metrics().callbacks.labels(channel, outcome).inc()


# The job's outcome text (app/payments/settlement.py and services.process_inbox) begins
# with one of these; the text itself can name amounts and reasons, so it is no label.
_PROCESSED_PREFIXES = (
    ("paid (late", "paid_late"),
    ("paid", "paid"),
    ("duplicate", "duplicate"),
    ("already processed", "already_processed"),
    ("orphan payment", "orphan_refund"),
    ("amount does not match", "amount_mismatch"),
    ("no matching attempt", "no_matching_attempt"),
    ("no such attempt", "no_matching_attempt"),
    ("nothing to do", "not_paid"),
    ("held for staff", "held_for_staff"),
    ("missing", "missing"),
)


def processed_outcome(outcome_text: str) -> str:
    for prefix, outcome in _PROCESSED_PREFIXES:
        if outcome_text.startswith(prefix):
            return outcome
    return "other"


def count_processed_notification(channel: str | None, outcome_text: str) -> None:
    metrics().notifications_processed.labels(channel or "unknown", processed_outcome(outcome_text)).inc()


def count_periodic_failure(step: str) -> None:
    metrics().periodic_failures.labels(step).inc()


def observe_job(name: str, seconds: float, failed: bool) -> None:
    recorded = metrics()
    recorded.job_seconds.labels(name).observe(seconds)
    if failed:
        recorded.job_failures.labels(name).inc()
