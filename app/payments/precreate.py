"""Asking the channel for a QR code: a boundary step, not a service.

It ends the caller's transaction before the network call: no row lock or SQLite write
lock is held while we wait on a channel (which, in the embedded mode, is our own
emulator needing that same lock), and a slow channel cannot stall other writers.
"""
from __future__ import annotations

import logging

from sqlalchemy import case, update

from app.extensions import db
from app.payments.channels.base import ChannelError, ChargeRequest
from app.payments.models import PaymentAttempt
from app.payments.notify_urls import notify_url
from app.payments.resolution import call_channel
from app.payments.settlement import FIRST_QUERY_AFTER
from app.timeutil import as_aware, now

log = logging.getLogger(__name__)


def issue_qr(attempt_id: int, subject: str) -> str | None:
    """Precreate the attempt at its channel and store its QR text; commits.

    Returns the QR text, or None when the channel failed (the reason is kept on the
    attempt and the learner can retry: precreate is idempotent per out_trade_no).
    """
    attempt = db.session.get(PaymentAttempt, attempt_id)
    if attempt is None or attempt.status != "created":
        db.session.commit()
        return None
    if attempt.qr_code:
        db.session.commit()
        return attempt.qr_code
    if now() >= attempt.expires_at:
        db.session.commit()
        return None
    charge = ChargeRequest(
        out_trade_no=attempt.out_trade_no,
        amount_fen=attempt.amount_fen,
        subject=subject[:128],
        expires_at=as_aware(attempt.expires_at),
        notify_url=notify_url(attempt.channel),
    )
    try:
        intent = call_channel(attempt.channel, "precreate", lambda adapter: adapter.precreate(charge))
    except ChannelError as error:
        log.warning("precreate of %s failed: %s", charge.out_trade_no, type(error).__name__)
        attempt = db.session.get(PaymentAttempt, attempt_id)
        attempt.last_error = f"{type(error).__name__}: {error}"[:255]
        db.session.commit()
        return None
    # One UPDATE, not a read and a write: the attempt may have moved on during the call
    # (a switch of channel closing it); the QR code is kept on it all the same, as history.
    issued_at = now()
    db.session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt_id)
        .values(
            qr_code=intent.qr_code, last_error=None, qr_issued_at=issued_at,
            # A lost callback must not leave the payer waiting: start the active-query schedule.
            next_query_at=case((PaymentAttempt.status == "created", issued_at + FIRST_QUERY_AFTER),
                               else_=PaymentAttempt.next_query_at),
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()  # expires any loaded copy of the attempt
    return intent.qr_code
