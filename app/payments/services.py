"""Notifications in: verified, checked against our attempt, stored once, processed once
(DESIGN.md §8). Flushes, never commits; the caller's transaction holds each step."""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace

from sqlalchemy import Insert, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import joinedload

from app.audit.services import record
from app.database import one_statement_connection
from app.extensions import db
from app.payments.channels.base import Notification, RefundNotification, TradeState
from app.payments.models import InboxNotification, PaymentAttempt, Refund, RejectedNotification, refund_channel_fen
from app.payments.settlement import Settlement, settle_payment
from app.payments.transitions import compare_and_set
from app.timeutil import from_aware, now

log = logging.getLogger(__name__)

BODY_EXCERPT_CHARS = 2000


class NotificationMismatch(Exception):
    """A correctly signed notification that does not match any attempt of ours.
    ``kind`` names the check it failed in a word (the metrics count by it)."""

    def __init__(self, message: str, kind: str = "mismatch") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class StoredNotification:
    inbox_id: int
    is_new: bool
    needs_processing: bool


# Every callback's statements, in Core on the tables: the ORM's unit of work (and the
# savepoint a plain INSERT needs around it) cost this hot path several times their price.
_ATTEMPTS = PaymentAttempt.__table__
_INBOX = InboxNotification.__table__
_ATTEMPT_TO_CHECK = select(_ATTEMPTS.c.id, _ATTEMPTS.c.channel, _ATTEMPTS.c.amount_fen).where(
    _ATTEMPTS.c.out_trade_no == bindparam("out_trade_no")
)
# What a notification writes to its inbox row; the attempt's id comes from the database.
_NOTIFICATION_COLUMNS = (
    "channel", "dedupe_key", "out_trade_no", "trade_state", "amount_fen", "channel_trade_no",
    "paid_at", "opened_at", "raw_body", "received_at",
)


@functools.cache
def _insert_if_ours(dialect: str) -> Insert:
    """One statement for a callback's usual case: the inbox row goes in if the attempt
    it names is ours, on its channel, for its amount, and its dedupe key is new.

    ``INSERT … SELECT … FROM payment_attempts WHERE … ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id`` (PostgreSQL and SQLite both have it): no id back means nothing went in,
    without the error (and so the savepoint) a plain INSERT of a duplicate would raise.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    notification = [bindparam(name, type_=_INBOX.c[name].type) for name in _NOTIFICATION_COLUMNS]
    matching_attempt = select(*notification, _ATTEMPTS.c.id).where(
        _ATTEMPTS.c.out_trade_no == bindparam("out_trade_no"),
        _ATTEMPTS.c.channel == bindparam("channel"),
        _ATTEMPTS.c.amount_fen == bindparam("amount_fen"),
    )
    return (
        insert(_INBOX)
        .from_select([*_NOTIFICATION_COLUMNS, "attempt_id"], matching_attempt)
        .on_conflict_do_nothing(index_elements=[_INBOX.c.dedupe_key])
        .returning(_INBOX.c.id)
    )


def check_against_attempt(notification: Notification) -> int:
    """The business checks after the signature: our out_trade_no, our channel, our amount.
    Returns the attempt's id."""
    attempt = db.session.execute(
        _ATTEMPT_TO_CHECK, {"out_trade_no": notification.out_trade_no}
    ).one_or_none()
    if attempt is None:
        raise NotificationMismatch("unknown out_trade_no", kind="unknown_trade")
    if attempt.channel != notification.channel:
        raise NotificationMismatch("channel does not match the attempt")
    if notification.currency != "CNY":
        raise NotificationMismatch("currency is not CNY")
    if notification.amount_fen != attempt.amount_fen:
        raise NotificationMismatch(
            f"amount {notification.amount_fen} does not match attempt {attempt.amount_fen}",
            kind="amount_mismatch",
        )
    return attempt.id


def store_notification(notification: Notification, raw_body: str) -> StoredNotification:
    """Write a verified notification to the inbox once; a redelivery finds the first row.
    One that does not match our attempt raises NotificationMismatch and stores nothing.

    On PostgreSQL a new notification is committed here, by itself; the rest happens in
    the caller's session, which the caller commits."""
    dedupe_key = f"{notification.channel}:{notification.notify_id}"
    if notification.currency == "CNY":
        inbox_id = _insert_new(notification, dedupe_key, raw_body)
        if inbox_id is not None:
            return StoredNotification(inbox_id, is_new=True, needs_processing=True)
    # Nothing went in: either the notification does not match our attempt (this raises,
    # saying how), or it is a redelivery (PostgreSQL's ON CONFLICT waited for a racing
    # first delivery to commit).
    check_against_attempt(notification)
    # Counted in SQL, not in Python: racing redeliveries must not lose each other's count.
    existing = db.session.execute(
        update(_INBOX)
        .where(_INBOX.c.dedupe_key == dedupe_key)
        .values(deliveries=_INBOX.c.deliveries + 1)
        .returning(_INBOX.c.id, _INBOX.c.status)
    ).one()
    return StoredNotification(existing.id, is_new=False, needs_processing=existing.status == "received")


def _insert_new(notification: Notification, dedupe_key: str, raw_body: str) -> int | None:
    """`_insert_if_ours` for this notification: the new row's id, or None."""
    values = {
        "channel": notification.channel,
        "dedupe_key": dedupe_key,
        "out_trade_no": notification.out_trade_no,
        "trade_state": notification.state.value,
        "amount_fen": notification.amount_fen,
        "channel_trade_no": notification.channel_trade_no,
        "paid_at": from_aware(notification.paid_at) if notification.paid_at else None,
        "opened_at": from_aware(notification.opened_at) if notification.opened_at else None,
        "raw_body": raw_body,
        "received_at": now(),
    }
    if db.engine.dialect.name == "postgresql":
        # The usual callback, in one round trip instead of three (BEGIN, INSERT, COMMIT):
        # a single statement commits atomically by itself.
        with one_statement_connection(db.engine) as connection:
            return connection.execute(_insert_if_ours("postgresql"), values).scalar_one_or_none()
    # SQLite: in the caller's transaction, which holds the database's one write lock
    # from its first statement (app/database.py); a second connection would wait on it.
    return db.session.execute(_insert_if_ours("sqlite"), values).scalar_one_or_none()


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
    # The attempt comes with the row, in one query; settle_payment finds it loaded.
    row = db.session.get(
        InboxNotification, inbox_id, options=[joinedload(InboxNotification.attempt)]
    )
    if row is None:
        return Settlement("missing")
    channel = row.channel  # read now: a compare-and-set expires the row, and a re-read costs a query
    return replace(_process_row(row), channel=channel)


def _process_row(row: InboxNotification) -> Settlement:
    if row.status == "processed":
        return Settlement("already processed")
    attempt = row.attempt
    if attempt is None or attempt.out_trade_no != row.out_trade_no:
        outcome = "no matching attempt"
        compare_and_set(InboxNotification, row.id, "inbox", row.status, "fail", outcome=outcome)
        return Settlement(outcome)
    if row.amount_fen != attempt.amount_fen:
        outcome = "amount does not match the attempt"
        compare_and_set(InboxNotification, row.id, "inbox", row.status, "fail", outcome=outcome)
        return Settlement(outcome)
    if row.trade_state == TradeState.PAID.value:
        settlement = settle_payment(attempt.id, row.channel_trade_no, row.amount_fen, row.paid_at,
                                    opened_at=row.opened_at)
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
    if refund is None or refund.attempt is None or refund.attempt.out_trade_no != notice.out_trade_no:
        raise NotificationMismatch("unknown out_refund_no")
    if refund.attempt.channel != notice.channel or notice.amount_fen != refund_channel_fen(refund):
        raise NotificationMismatch("refund callback does not match the refund")
    if refund.status != "processing":
        return None
    refund.next_check_at = now()
    db.session.flush()
    return refund.id
