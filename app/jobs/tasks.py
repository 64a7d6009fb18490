"""The job functions RQ and the inline runner call. They take ids, never objects.

Each is a boundary: it commits (the `job` wrapper, or the resolution steps it calls)
and only then enqueues follow-up work, such as the refund of an orphan payment.
"""
from __future__ import annotations

import logging

from app.earnings.maturity import release_order
from app.earnings.statements import close_statement, due_periods
from app.extensions import db
from app.jobs import enqueue
from app.jobs.runner import job
from app.mail.delivery import deliver
from app.observability.metrics import count_processed_notification
from app.payments import resolution
from app.payments.services import process_inbox
from app.payments.settlement import Settlement
from app.platform_events import sending as platform_event_sending
from app.reconciliation import runs
from app.renewal.services import remind_access_ending as remind

log = logging.getLogger(__name__)


def _follow_up(settlement: Settlement) -> str:
    if settlement.refund_id is not None:
        enqueue("execute_refund", settlement.refund_id)
    return settlement.outcome


@job
def process_notification(inbox_id: int) -> str:
    settlement = process_inbox(inbox_id)
    db.session.commit()
    count_processed_notification(settlement.channel, settlement.outcome)
    log.info("notification %s: %s", inbox_id, settlement.outcome)
    return _follow_up(settlement)


@job
def query_attempt(attempt_id: int) -> str:
    settlement = resolution.query_attempt(attempt_id)
    log.info("query of attempt %s: %s", attempt_id, settlement.outcome)
    return _follow_up(settlement)


@job
def expire_order(order_id: int) -> str:
    settlement = resolution.expire_order(order_id)
    log.info("expiry of order %s: %s", order_id, settlement.outcome)
    return _follow_up(settlement)


@job
def close_attempt(attempt_id: int) -> str:
    settlement = resolution.close_at_channel(attempt_id)
    log.info("close of attempt %s: %s", attempt_id, settlement.outcome)
    return _follow_up(settlement)


@job
def execute_refund(refund_id: int) -> str:
    outcome = resolution.run_refund(refund_id)
    log.info("refund %s: %s", refund_id, outcome)
    return outcome


@job
def release_earnings(order_id: int) -> str:
    released = release_order(order_id)
    db.session.commit()
    return f"released {released} line(s)"


@job
def close_statements(instructor_id: int) -> str:
    """Close every ended month of one instructor, oldest first, each in its own commit."""
    closed = []
    for period in due_periods(instructor_id):
        close_statement(instructor_id, period)
        db.session.commit()
        closed.append(period)
    return f"closed {', '.join(closed) or 'nothing'}"


@job
def reconcile_bill(channel_day: str) -> str:
    """Reconcile one channel's bill of one day (``"alipay-2026-11-20"``). A bill not
    ready or a channel error is recorded on the run, which the periodic round retries."""
    channel, bill_date = runs.parse_channel_day(channel_day)
    outcome = runs.reconcile_day(channel, bill_date)
    if outcome.error is not None:
        return f"not reconciled: {outcome.error}"
    return f"{outcome.lines_checked} line(s), {len(outcome.findings)} discrepancy(ies)"


@job
def recheck_attempt(attempt_id: int) -> str:
    settlement = runs.recheck_attempt(attempt_id)
    log.info("recheck of attempt %s: %s", attempt_id, settlement.outcome)
    return _follow_up(settlement)


@job
def deliver_email(message_id: int) -> str:
    """Send one outbox message (app/mail/delivery.py commits around the send)."""
    return deliver(message_id)


@job
def deliver_event(delivery_id: int) -> str:
    """Post one platform event delivery (it commits its claim, then its outcome)."""
    return platform_event_sending.deliver(delivery_id)


@job
def remind_access_ending(enrollment_id: int) -> str:
    reminded = remind(enrollment_id)
    db.session.commit()
    return "reminded" if reminded else "nothing to remind"
