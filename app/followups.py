"""What follows a money movement besides the books: e-mails, receipts, platform events.

The services that move money call these at the moment the movement is booked, inside
the same transaction, and each follow-up only adds rows (an outbox message, a receipt, an
event delivery) that commit or roll back with the movement. Sending happens later, from
those rows, by jobs: so a crash never sends news of a payment that did not happen, and
a payment never loses its news. One module, so a reader sees in one place everything a
payment sets off.
"""
from __future__ import annotations

from datetime import datetime

from app.invoices import services as invoices
from app.mail import notices
from app.platform_events import services as platform_events
from app.receipts import services as receipts


def order_paid(order_id: int) -> None:
    """An order was paid (by a channel, by balance, or late after it had closed)."""
    notices.order_paid(order_id)
    receipts.issue_payment_receipt(order_id)
    platform_events.announce_order_paid(order_id)


def refund_requested(refund_id: int) -> None:
    """A learner asked for money back."""
    notices.refund_status(refund_id, "requested")


def refund_rejected(refund_id: int) -> None:
    """Staff turned a refund request down."""
    notices.refund_status(refund_id, "rejected")


def refund_succeeded(refund_id: int) -> None:
    """A customer refund went through: the money is back with the learner."""
    invoices.apply_refund(refund_id)
    notices.refund_status(refund_id, "succeeded")
    receipts.issue_refund_receipt(refund_id)
    platform_events.announce_order_refunded(refund_id)


def refund_failed(refund_id: int) -> None:
    """The channel refused a refund; staff will retry it."""
    notices.refund_status(refund_id, "failed")


def enrollment_granted(user_id: int, course_id: int, order_id: int | None) -> None:
    """A learner may study a course (new, given back after a refund, or extended)."""
    platform_events.announce_enrollment_granted(user_id, course_id, order_id)


def enrollment_revoked(user_id: int, course_id: int, order_id: int | None) -> None:
    """A learner lost access to a course through a refund."""
    platform_events.announce_enrollment_revoked(user_id, course_id, order_id)


def access_ending(enrollment_id: int, ends_at: datetime) -> None:
    """A learner's access to a course ends soon: the renewal reminder."""
    notices.access_ending(enrollment_id, ends_at)


def statement_ready(statement_id: int) -> None:
    """An instructor's monthly statement was closed and can be downloaded."""
    notices.statement_ready(statement_id)
