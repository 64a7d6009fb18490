"""Gauges read at scrape time from the database and Redis (README "Monitoring").

Each is one cheap query on an index (``payment_attempts.status``,
``notification_inbox.status``, ``orders.created_at``) or, for Redis, one pipelined round
trip for every queue. They are computed by whichever process answers the scrape, so
they need no multiprocess bookkeeping. A source that fails is reported as down
(``cashier_metrics_source_up``) rather than failing the whole scrape.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Iterator

from flask import current_app
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import case, func, select
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from app.analytics.measures import BASIS_POINTS, SuccessRate
from app.checkout.models import Order
from app.config import CHANNELS
from app.extensions import db
from app.jobs.queues import QUEUE_NAMES, redis_connection, rq_queue
from app.payments.models import InboxNotification, PaymentAttempt
from app.timeutil import now

log = logging.getLogger(__name__)

SUCCESS_WINDOW = timedelta(hours=1)


def _per_channel(channel: InstrumentedAttribute[str], condition: ColumnElement[bool]) -> dict[str, int]:
    """Rows meeting ``condition`` counted per channel, every channel we know listed."""
    counts = dict.fromkeys(CHANNELS, 0)
    counts.update(dict(db.session.execute(select(channel, func.count()).where(condition).group_by(channel)).all()))
    return counts


def pending_attempts() -> dict[str, int]:
    """Open payment attempts (a QR shown, not yet paid, closed or failed) per channel."""
    return _per_channel(PaymentAttempt.channel, PaymentAttempt.status == "created")


def unprocessed_notifications() -> dict[str, int]:
    """Stored callbacks the job has not processed yet, per channel."""
    return _per_channel(InboxNotification.channel, InboxNotification.status == "received")


def recent_success_rate() -> SuccessRate:
    """The success rate (app/analytics/measures.py) of the orders created in the last
    hour: of those that started a payment, those whose payment succeeded. An order
    still within its deadline counts as started and not (yet) succeeded."""
    since = now() - SUCCESS_WINDOW
    per_order = (
        select(func.max(case((PaymentAttempt.status == "succeeded", 1), else_=0)).label("succeeded"))
        .select_from(Order)
        .join(PaymentAttempt, PaymentAttempt.order_id == Order.id)
        # An attempt is made after its order, so this bound loses none and lets the
        # database read both tables by their creation-time indexes.
        .where(Order.created_at >= since, PaymentAttempt.created_at >= since)
        .group_by(Order.id)
        .subquery()
    )
    started, succeeded = db.session.execute(
        select(func.count(), func.coalesce(func.sum(per_order.c.succeeded), 0))
    ).one()
    return SuccessRate(int(started), int(succeeded))


def queue_counts() -> dict[str, tuple[int, int]]:
    """Per queue purpose: jobs waiting, and jobs in the failed registry."""
    queues = [rq_queue(purpose) for purpose in QUEUE_NAMES]
    with redis_connection().pipeline(transaction=False) as pipeline:
        for queue in queues:
            pipeline.llen(queue.key)
            # ZCARD only: the registry's own count() first cleans up, a write.
            pipeline.zcard(queue.failed_job_registry.key)
        answers = pipeline.execute()
    return {purpose: (int(answers[2 * index]), int(answers[2 * index + 1]))
            for index, purpose in enumerate(QUEUE_NAMES)}


class StateCollector:
    """The gauges of the app whose context the scrape runs in."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("cashier_metrics_source_up",
                               "Whether the scrape could read a source (1) or not (0).", labels=["source"])
        try:
            yield from self._database()
            up.add_metric(["database"], 1)
        except Exception as error:  # noqa: BLE001 - a failed read is a gauge, not a failed scrape
            log.warning("metrics: database unreadable: %s", type(error).__name__)
            up.add_metric(["database"], 0)
        finally:
            db.session.rollback()
        if current_app.config.get("REDIS_URL"):
            try:
                yield from self._redis()
                up.add_metric(["redis"], 1)
            except Exception as error:  # noqa: BLE001
                log.warning("metrics: Redis unreadable: %s", type(error).__name__)
                up.add_metric(["redis"], 0)
        yield up

    def _database(self) -> Iterator[GaugeMetricFamily]:
        # Read everything first: a failure then yields no partial family.
        pending, inbox, rate = pending_attempts(), unprocessed_notifications(), recent_success_rate()
        attempts = GaugeMetricFamily("cashier_payment_attempts_pending",
                                     "Payment attempts still open (QR shown, not settled), by channel.",
                                     labels=["channel"])
        for channel, count in pending.items():
            attempts.add_metric([channel], count)
        unprocessed = GaugeMetricFamily("cashier_notify_inbox_unprocessed",
                                        "Stored callbacks not processed yet, by channel.", labels=["channel"])
        for channel, count in inbox.items():
            unprocessed.add_metric([channel], count)
        yield attempts
        yield unprocessed
        yield GaugeMetricFamily("cashier_payment_orders_started_last_hour",
                                "Orders created in the last hour that started a payment.", value=rate.started)
        yield GaugeMetricFamily("cashier_payment_orders_succeeded_last_hour",
                                "Of those, orders whose payment succeeded.", value=rate.succeeded)
        if rate.basis_points is not None:
            # The analytics page's basis points as a Prometheus ratio (0 to 1);
            # absent while no order started a payment in the hour.
            yield GaugeMetricFamily("cashier_payment_success_ratio_last_hour",
                                    "Payment success rate of the orders created in the last hour (0-1).",
                                    value=rate.basis_points / BASIS_POINTS)

    def _redis(self) -> Iterator[GaugeMetricFamily]:
        counts = queue_counts()
        depth = GaugeMetricFamily("cashier_queue_depth", "Jobs waiting in an RQ queue, by purpose.",
                                  labels=["queue"])
        failed = GaugeMetricFamily("cashier_queue_failed_jobs", "Jobs in an RQ queue's failed registry.",
                                   labels=["queue"])
        for purpose, (waiting, failures) in counts.items():
            depth.add_metric([purpose], waiting)
            failed.add_metric([purpose], failures)
        yield depth
        yield failed
