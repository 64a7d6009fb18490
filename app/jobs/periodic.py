"""Periodic work: what `flask jobs tick` runs once and the scheduler runs forever.

The database is the source of truth and Redis may lose jobs (DESIGN.md §8). Each round
finds, in the database, what should have happened by now and enqueues it: inbox rows
left unprocessed, orders past their deadline, open attempts due for an active query,
refunds to send or to check, channel bills to reconcile; and the alerts that start or
end (app/alerts). Every job is idempotent, so finding one twice is harmless.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Callable

from flask import Flask, current_app
from sqlalchemy import select, update

from app.alerts.checks import evaluate, read_failed_job_count
from app.alerts.episodes import record_evaluation
from app.alerts.notices import queue_alert_emails
from app.analytics import money_flow
from app.analytics import rollup as analytics_rollup
from app.checkout.models import Order
from app.earnings.maturity import due_order_ids
from app.earnings.statements import instructors_due
from app.extensions import db
from app.jobs import enqueue
from app.jobs.runner import run_job
from app.mail.services import due_message_ids
from app.observability.metrics import count_periodic_failure
from app.membership import pools as membership_pools
from app.payments.models import InboxNotification, PaymentAttempt
from app.payments.refunds import claim_refund, due_refund_ids
from app.payments.registry import enabled_channels
from app.platform_events.sending import due_delivery_ids, release_expired_claims
from app.reconciliation.runs import claim_due_days
from app.renewal.services import enrollments_to_remind
from app.timeutil import now

log = logging.getLogger(__name__)

INBOX_GRACE = timedelta(seconds=60)
SWEEP_BATCH = 500
# A claimed query pushes the attempt's next query this far out, so a lost job is
# retried by a later round while concurrent rounds (or pollers) do not pile up.
QUERY_LEASE = timedelta(minutes=2)


def sweep_inbox() -> int:
    """Re-enqueue unprocessed inbox rows older than the grace period; returns how many."""
    stale_ids = list(
        db.session.scalars(
            select(InboxNotification.id)
            .where(
                InboxNotification.status == "received",
                InboxNotification.received_at < now() - INBOX_GRACE,
            )
            .order_by(InboxNotification.id)
            .limit(SWEEP_BATCH)
        )
    )
    db.session.commit()  # end the read before jobs (maybe inline) open their own
    for inbox_id in stale_ids:
        enqueue("process_notification", inbox_id)
    return len(stale_ids)


def expire_due_orders() -> int:
    """Enqueue the expiry of every pending order past its deadline; returns how many."""
    due_ids = list(
        db.session.scalars(
            select(Order.id)
            .where(Order.status == "pending", Order.expires_at <= now())
            .order_by(Order.expires_at)
            .limit(SWEEP_BATCH)
        )
    )
    db.session.commit()
    for order_id in due_ids:
        enqueue("expire_order", order_id)
    return len(due_ids)


def claim_query(attempt_id: int) -> bool:
    """Take the due active query of one open attempt; flushes. False if not due or taken."""
    moment = now()
    claimed = db.session.execute(
        update(PaymentAttempt)
        .where(
            PaymentAttempt.id == attempt_id,
            PaymentAttempt.status == "created",
            PaymentAttempt.next_query_at <= moment,
        )
        .values(next_query_at=moment + QUERY_LEASE)
        .execution_options(synchronize_session=False)
    ).rowcount
    return claimed == 1


def query_due_attempts() -> int:
    """Enqueue the due work of each open attempt: an active query while its order is
    pending, a close at its channel once the order is paid or closed by other means
    (a superseded QR whose close failed must not stay payable)."""
    due = db.session.execute(
        select(PaymentAttempt.id, Order.status)
        .join(Order, Order.id == PaymentAttempt.order_id)
        .where(PaymentAttempt.status == "created", PaymentAttempt.next_query_at <= now())
        .order_by(PaymentAttempt.next_query_at)
        .limit(SWEEP_BATCH)
    ).all()
    claimed = [(attempt_id, status) for attempt_id, status in due if claim_query(attempt_id)]
    db.session.commit()
    for attempt_id, order_status in claimed:
        enqueue("query_attempt" if order_status == "pending" else "close_attempt", attempt_id)
    return len(claimed)


def send_due_refunds() -> int:
    """Enqueue refunds to send or re-check, each claimed first like a query."""
    claimed = [refund_id for refund_id in due_refund_ids(now(), SWEEP_BATCH) if claim_refund(refund_id)]
    db.session.commit()
    for refund_id in claimed:
        enqueue("execute_refund", refund_id)
    return len(claimed)


def release_due_earnings() -> int:
    """Enqueue the release of shares whose refund window has closed."""
    order_ids = due_order_ids(SWEEP_BATCH)
    db.session.commit()
    for order_id in order_ids:
        enqueue("release_earnings", order_id)
    return len(order_ids)


def share_membership_pools() -> int:
    """Share out each ended month's membership pool (a few months at most: in the
    ticker's own transaction, committed here)."""
    periods = membership_pools.due_periods()
    for period in periods:
        membership_pools.share_month(period)
    db.session.commit()
    return len(periods)


def close_due_statements() -> int:
    """Enqueue the closing of ended months that have no statement yet."""
    instructor_ids = instructors_due()
    db.session.commit()
    for instructor_id in instructor_ids:
        enqueue("close_statements", instructor_id)
    return len(instructor_ids)


def remind_ending_access() -> int:
    """Enqueue the renewal reminder of enrollments ending within seven days."""
    enrollment_ids = enrollments_to_remind()
    db.session.commit()
    for enrollment_id in enrollment_ids:
        enqueue("remind_access_ending", enrollment_id)
    return len(enrollment_ids)


def reconcile_due_bills() -> int:
    """Enqueue the reconciliation of each enabled channel's recent days whose bill is
    out and has no finished run (a day is claimed first, like a query)."""
    channel_days = claim_due_days(enabled_channels())
    db.session.commit()
    for channel_day in channel_days:
        # An app context of its own: run inline (no Redis), the job's session, which it
        # closes when done, and the rows of a whole bill stay out of the caller's session.
        with current_app.app_context():
            enqueue("reconcile_bill", channel_day)
    return len(channel_days)


def deliver_due_mail() -> int:
    """Enqueue the delivery of due outbox messages and of those whose claim lapsed (the
    job claims each by compare-and-set, so finding one twice sends it once)."""
    message_ids = due_message_ids(now(), SWEEP_BATCH)
    db.session.commit()
    # As for bills: run inline, each delivery has a session of its own, which it closes,
    # and the caller's loaded rows stay attached.
    with current_app.app_context():
        for message_id in message_ids:
            if not enqueue("deliver_email", message_id):
                # Redis is down, which is when the alert e-mails matter most: deliver here
                # (the delivery claims its message, so a worker finding it too sends once).
                run_job("deliver_email", message_id)
    return len(message_ids)


def deliver_due_events() -> int:
    """Enqueue the platform event deliveries that are due, after handing back claims a
    dead worker left; a delivery's job claims it again, so finding one twice is harmless."""
    release_expired_claims()
    delivery_ids = due_delivery_ids(SWEEP_BATCH)
    db.session.commit()
    for delivery_id in delivery_ids:
        enqueue("deliver_event", delivery_id)
    return len(delivery_ids)


def raise_alerts() -> int:
    """Evaluate the alerts, open and close their episodes, and queue the e-mails of
    those that started or ended (to admins, when ALERT_EMAILS_ENABLED); returns how many
    alerts are firing."""
    moment = now()
    evaluation = evaluate(moment, read_failed_job_count())
    changes = record_evaluation(evaluation, moment)
    if current_app.config["ALERT_EMAILS_ENABLED"]:
        queue_alert_emails(changes, evaluation.firing)
    db.session.commit()
    return len(evaluation.firing)


def store_money_days() -> int:
    """Store the journal totals of ended days that have none yet (the money charts'
    rows; a few dozen days a round at most)."""
    stored = money_flow.store_ended_days()
    db.session.commit()
    return stored


def refresh_analytics_rollup() -> int:
    """Roll up the analytics page's days that are due: those never rolled up and those
    that can still change (app/analytics/rollup.py); in the ticker's own transaction,
    committed here, so a day's rows are replaced at once. Returns how many days."""
    days = analytics_rollup.refresh_due()
    db.session.commit()
    return days


# The round's steps, in an order where each can feed the next.
STEPS: tuple[tuple[str, Callable[[], int]], ...] = (
    ("inbox_requeued", sweep_inbox),
    ("attempts_queried", query_due_attempts),
    ("orders_due", expire_due_orders),
    ("refunds_sent", send_due_refunds),
    ("earnings_released", release_due_earnings),
    ("membership_pools", share_membership_pools),  # before statements, which print them
    ("statements_due", close_due_statements),
    ("access_reminders", remind_ending_access),
    ("alerts", raise_alerts),  # after the sweeps, which may end a condition
    ("mail_due", deliver_due_mail),  # after the steps above, which may queue mail
    ("events_due", deliver_due_events),
    ("money_days", store_money_days),
    # After the steps that settle payments and refunds, which change recent days.
    ("analytics_rollup", refresh_analytics_rollup),
    # Last: it downloads whole bills, and nothing above waits on it.
    ("bills_due", reconcile_due_bills),
)


def tick() -> dict[str, int]:
    """One round of periodic work: each step's count, by name. A step that raises is
    rolled back, logged and counted (``cashier_periodic_step_failures``) and left out of
    the answer; the steps after it still run, so one broken step (a timeout rolling up
    analytics, say) does not hold up mail, refunds or reconciliation."""
    done: dict[str, int] = {}
    for name, step in STEPS:
        try:
            done[name] = step()
        except Exception:  # noqa: BLE001 - the next round retries the step
            db.session.rollback()
            log.exception("periodic step %s failed", name)
            count_periodic_failure(name)
    return done


def start_background_ticker(app: Flask, interval_seconds: int = 10) -> threading.Thread:
    """The embedded mode's scheduler: a daemon thread calling `tick`."""

    def loop() -> None:
        while True:
            time.sleep(interval_seconds)
            with app.app_context():
                try:
                    tick()
                except Exception:  # noqa: BLE001 - keep ticking; the next round retries
                    log.exception("periodic tick failed")
                finally:
                    db.session.remove()

    thread = threading.Thread(target=loop, name="cashier-ticker", daemon=True)
    thread.start()
    return thread
