"""The outbox: queueing a message, and the claims and outcomes of its delivery.

Flush only, like every service: the follow-ups call `queue_email` inside the money
transaction, and the `deliver_email` job commits around each step. Every status change
goes through `states.OUTBOX` by compare-and-set.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.audit.services import record
from app.extensions import db
from app.mail.backends import Envelope
from app.mail.models import OutboxMessage
from app.mail.states import next_status
from app.timeutil import now

# Minutes to wait after the 1st, 2nd, … failed attempt; the last interval repeats.
BACKOFF_MINUTES = (1, 5, 15, 60, 240)
# How long one claim may take before another worker may take the message over: well
# beyond the SMTP timeout, so a slow but live worker is not overtaken.
CLAIM_LEASE = timedelta(minutes=5)


class NotResendable(Exception):
    """Only a failed message can be sent again."""


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one message: ``attempt`` is the attempts count it set."""

    message_id: int
    attempt: int
    envelope: Envelope


def message_id_header(key: str, sender: str) -> str:
    """A Message-ID made from the outbox key: the rare second send of one message (a
    crash after the SMTP server accepted it but before we recorded that) carries the
    same id, and mail clients treat the two copies as one message."""
    domain = sender.rpartition("@")[2].strip(" >") or "localhost"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def queue_email(key: str, kind: str, to: str, subject: str, body_text: str, locale: str,
                body_html: str | None = None) -> int | None:
    """Add a message to the outbox unless one with ``key`` is there; flushes.

    Returns the new message's id, or None when the key was queued before (that message
    is left as it is). Safe against a concurrent queue of the same key: the insert skips
    a conflicting row instead of failing the caller's transaction.
    """
    values: dict[str, Any] = dict(
        key=key[:128], kind=kind, recipient=to, locale=locale, subject=subject[:255],
        body_text=body_text, body_html=body_html, status="pending", attempts=0,
        next_attempt_at=now(), created_at=now(),
    )
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(OutboxMessage).values(**values).on_conflict_do_nothing(index_elements=["key"])
    result = db.session.execute(statement.returning(OutboxMessage.id))
    return result.scalar_one_or_none()


def _move(message_id: int, expected: str, event: str, *conditions: ColumnElement[bool],
          **values: Any) -> bool:
    """Compare-and-set: move the message from ``expected`` by ``event`` if
    ``conditions`` hold too; False if another worker or a staff action got there first."""
    result = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == expected, *conditions)
        .values(status=next_status(expected, event), **values)
        .execution_options(synchronize_session=False)
    )
    loaded = db.session.identity_map.get(db.session.identity_key(OutboxMessage, message_id))
    if loaded is not None:
        db.session.expire(loaded)
    return result.rowcount == 1


def due_message_ids(moment: datetime, limit: int) -> list[int]:
    """Pending messages whose attempt is due, and claimed ones whose lease lapsed."""
    return list(db.session.scalars(
        select(OutboxMessage.id)
        .where(
            ((OutboxMessage.status == "pending") & (OutboxMessage.next_attempt_at <= moment))
            | ((OutboxMessage.status == "sending") & (OutboxMessage.lease_until < moment))
        )
        .order_by(OutboxMessage.next_attempt_at)
        .limit(limit)
    ))


def claim(message_id: int, sender: str) -> Claim | None:
    """Take one due message for sending; flushes. None when it is not due, already
    sent or failed, or held by another worker whose lease has not lapsed."""
    moment = now()
    taken = _move(message_id, "pending", "claim", OutboxMessage.next_attempt_at <= moment,
                  attempts=OutboxMessage.attempts + 1, lease_until=moment + CLAIM_LEASE)
    if not taken:
        taken = _move(message_id, "sending", "reclaim", OutboxMessage.lease_until < moment,
                      attempts=OutboxMessage.attempts + 1, lease_until=moment + CLAIM_LEASE)
    if not taken:
        return None
    message = db.session.get(OutboxMessage, message_id)
    assert message is not None
    envelope = Envelope(message_id_header(message.key, sender), message.recipient, message.subject,
                        message.body_text, message.body_html)
    return Claim(message_id, message.attempts, envelope)


def record_sent(held: Claim) -> bool:
    """The backend accepted the message; False if the claim had been taken over."""
    return _move(held.message_id, "sending", "send", OutboxMessage.attempts == held.attempt,
                 sent_at=now(), lease_until=None, last_error=None)


def record_failure(held: Claim, error: str, max_attempts: int) -> str | None:
    """The backend refused: wait and try again, or fail after the last attempt.
    Returns the new status, or None if the claim had been taken over."""
    mine = OutboxMessage.attempts == held.attempt
    if held.attempt >= max_attempts:
        moved = _move(held.message_id, "sending", "fail", mine, last_error=error[:255], lease_until=None)
        return "failed" if moved else None
    wait = BACKOFF_MINUTES[min(held.attempt, len(BACKOFF_MINUTES)) - 1]
    moved = _move(held.message_id, "sending", "defer", mine, last_error=error[:255], lease_until=None,
                  next_attempt_at=now() + timedelta(minutes=wait))
    return "pending" if moved else None


def resend(message_id: int, actor_id: int, reason: str) -> None:
    """Staff put a failed message back in line, with a fresh count of attempts; the
    audit log records who and why. Raises `NotResendable` for any other status."""
    message = db.session.get(OutboxMessage, message_id)
    if message is None or message.status != "failed":
        raise NotResendable(message_id)
    before = {"status": message.status, "attempts": message.attempts, "last_error": message.last_error}
    if not _move(message_id, "failed", "resend", attempts=0, next_attempt_at=now()):
        raise NotResendable(message_id)
    record(actor_id, "outbox.resend", "outbox_message", message_id, reason,
           before=before, after={"status": "pending", "attempts": 0})
