"""Notifications in: verified, checked against our attempt, stored once, processed once
(DESIGN.md §8). Flushes, never commits; the caller's transaction holds each step."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.audit.services import record
from app.extensions import db
from app.payments.channels.base import Notification, RefundNotification, TradeState
from app.payments.models import InboxNotification, PaymentAttempt, Refund, RejectedNotification
from app.payments.settlement import Settlement, settle_payment
from app.payments.transitions import compare_and_set
from app.timeutil import from_aware, now

log = logging.getLogger(__name__)

BODY_EXCERPT_CHARS = 2000


class NotificationMismatch(Exception):
    """A correctly signed notification that does not match any attempt of ours."""


@dataclass(frozen=True)
class StoredNotification:
    inbox_id: int
    is_new: bool
    needs_processing: bool


def attempt_by_out_trade_no(out_trade_no: str) -> PaymentAttempt | None:
    return db.session.scalar(
        select(PaymentAttempt).where(PaymentAttempt.out_trade_no == out_trade_no)
    )


def check_against_attempt(notification: Notification) -> PaymentAttempt:
    """The business checks after the signature: our out_trade_no, our channel, our amount."""
    attempt = attempt_by_out_trade_no(notification.out_trade_no)
    if attempt is None:
        raise NotificationMismatch("unknown out_trade_no")
    if attempt.channel != notification.channel:
        raise NotificationMismatch("channel does not match the attempt")
    if notification.currency != "CNY":
        raise NotificationMismatch("currency is not CNY")
    if notification.amount_fen != attempt.amount_fen:
        raise NotificationMismatch(
            f"amount {notification.amount_fen} does not match attempt {attempt.amount_fen}"
        )
    return attempt


def store_notification(notification: Notification, raw_body: str) -> StoredNotification:
    """Write a verified notification to the inbox once; a redelivery finds the first row."""
    attempt = check_against_attempt(notification)
    dedupe_key = f"{notification.channel}:{notification.notify_id}"
    row = InboxNotification(
        channel=notification.channel,
        dedupe_key=dedupe_key,
        out_trade_no=notification.out_trade_no,
        attempt_id=attempt.id,
        trade_state=notification.state.value,
        amount_fen=notification.amount_fen,
        channel_trade_no=notification.channel_trade_no,
        paid_at=from_aware(notification.paid_at) if notification.paid_at else None,
        raw_body=raw_body,
        received_at=now(),
    )
    try:
        with db.session.begin_nested():
            db.session.add(row)
        return StoredNotification(row.id, is_new=True, needs_processing=True)
    except IntegrityError:
        existing = db.session.scalar(
            select(InboxNotification).where(InboxNotification.dedupe_key == dedupe_key)
        )
        if existing is None:  # the unique violation was something else: let it surface
            raise
        # In SQL, not in Python: racing redeliveries must not lose each other's count.
        db.session.execute(
            update(InboxNotification)
            .where(InboxNotification.id == existing.id)
            .values(deliveries=InboxNotification.deliveries + 1)
            .execution_options(synchronize_session=False)
        )
        return StoredNotification(
            existing.id, is_new=False, needs_processing=existing.status == "received"
        )


def record_rejection(
    channel: str, reason: str, body: str, remote_addr: str | None, out_trade_no: str | None = None
) -> None:
    db.session.add(
        RejectedNotification(
            channel=channel,
            reason=reason[:255],
            out_trade_no=(out_trade_no or None) and out_trade_no[:64],
            remote_addr=remote_addr,
            body_excerpt=body[:BODY_EXCERPT_CHARS],
            received_at=now(),
        )
    )
    db.session.flush()


def process_inbox(inbox_id: int) -> Settlement:
    """Settle what an inbox row says. Idempotent: a processed row is left alone."""
    row = db.session.get(InboxNotification, inbox_id)
    if row is None:
        return Settlement("missing")
    if row.status == "processed":
        return Settlement("already processed")
    attempt = db.session.get(PaymentAttempt, row.attempt_id) if row.attempt_id else None
    if attempt is None or attempt.out_trade_no != row.out_trade_no:
        outcome = "no matching attempt"
        compare_and_set(InboxNotification, row.id, "inbox", row.status, "fail", outcome=outcome)
        return Settlement(outcome)
    if row.amount_fen != attempt.amount_fen:
        outcome = "amount does not match the attempt"
        compare_and_set(InboxNotification, row.id, "inbox", row.status, "fail", outcome=outcome)
        return Settlement(outcome)
    if row.trade_state == TradeState.PAID.value:
        settlement = settle_payment(attempt.id, row.channel_trade_no, row.amount_fen, row.paid_at)
    else:
        settlement = Settlement(f"nothing to do for trade state {row.trade_state}")
    compare_and_set(
        InboxNotification, row.id, "inbox", row.status, "process",
        outcome=settlement.outcome[:255], processed_at=now(),
    )
    return settlement


def replay_notification(inbox_id: int, staff_id: int, reason: str) -> Settlement:
    """Staff re-run the processing of a stored notification (after fixing its cause).

    Safe to repeat: processing is idempotent, and a processed row is left alone.
    """
    row = db.session.get(InboxNotification, inbox_id)
    if row is None:
        return Settlement("missing")
    before = {"status": row.status, "outcome": row.outcome}
    settlement = process_inbox(inbox_id)
    db.session.refresh(row)
    record(staff_id, "notification.replay", "notification_inbox", inbox_id, reason,
           before, {"status": row.status, "outcome": row.outcome})
    return settlement


def refund_for_notification(notice: RefundNotification) -> int | None:
    """The refund a verified refund callback is about, if it is processing and so due
    for a check at once; None when there is nothing to check (already settled)."""
    refund = db.session.scalar(select(Refund).where(Refund.refund_no == notice.out_refund_no))
    if refund is None or refund.attempt.out_trade_no != notice.out_trade_no:
        raise NotificationMismatch("unknown out_refund_no")
    if refund.attempt.channel != notice.channel or notice.amount_fen != refund.amount_fen:
        raise NotificationMismatch("refund callback does not match the refund")
    if refund.status != "processing":
        return None
    refund.next_check_at = now()
    db.session.flush()
    return refund.id
