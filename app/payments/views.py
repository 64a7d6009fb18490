"""`POST /notify/<channel>`: verify, store, commit, enqueue, answer (DESIGN.md §8)."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, request
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import csrf, db
from app.jobs import enqueue
from app.observability.metrics import count_callback
from app.payments import services
from app.payments.channels.crypto import KeyFormatError
from app.payments.channels.base import (
    NotificationRejected,
    NotifyAnswer,
    PaymentChannel,
    RefundNotification,
    SignatureError,
)
from app.config import CHANNELS
from app.payments.registry import get_channel

log = logging.getLogger(__name__)

bp = Blueprint("payments", __name__)

MAX_NOTIFY_BYTES = 64 * 1024


def _answer(answer: NotifyAnswer) -> Response:
    return Response(answer.body, status=answer.status, content_type=answer.content_type)


def _reject(channel: PaymentChannel, outcome: str, reason: str, body: str, out_trade_no: str | None) -> Response:
    """Refuse a callback: recorded for staff, counted under ``outcome`` (one word)."""
    log.warning("rejected %s notification: %s", channel.name, reason)
    count_callback(channel.name, outcome)
    try:
        services.record_rejection(channel.name, reason, body, request.remote_addr, out_trade_no)
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("could not record a rejected notification")
    return _answer(channel.rejected_answer(reason))


@bp.route("/notify/<channel>", methods=["POST"])
@csrf.exempt
def notify(channel: str) -> Response:
    # Every known channel, enabled or not: a channel switched off for new payments may
    # still owe us callbacks for money already paid.
    if channel not in CHANNELS:
        abort(404)
    try:
        adapter = get_channel(channel)
    except (RuntimeError, KeyFormatError):
        # Not configured here (no keys): nobody can have paid us through it.
        log.warning("callback for unconfigured channel %s", channel)
        count_callback(channel, "unconfigured")
        abort(404)
    if (request.content_length or 0) > MAX_NOTIFY_BYTES:
        return _reject(adapter, "rejected_size", f"too large: over {MAX_NOTIFY_BYTES} bytes", "", None)
    # A chunked body announces no length: read one byte past the limit, never more.
    raw = request.stream.read(MAX_NOTIFY_BYTES + 1)
    text = raw.decode("utf-8", errors="replace")
    if len(raw) > MAX_NOTIFY_BYTES:
        return _reject(adapter, "rejected_size", f"too large: over {MAX_NOTIFY_BYTES} bytes", text, None)
    if request.mimetype != adapter.notify_content_type:
        # Each channel sends one format; anything else is not the channel talking.
        return _reject(adapter, "rejected_content_type", f"content type {request.mimetype[:60] or 'missing'}, not "
                       f"{adapter.notify_content_type}", text, None)
    try:
        notification = adapter.parse_notification(raw, dict(request.headers))
    except (SignatureError, NotificationRejected) as error:
        outcome = "rejected_signature" if isinstance(error, SignatureError) else "rejected_invalid"
        return _reject(adapter, outcome, f"{type(error).__name__}: {error}", text, None)

    if isinstance(notification, RefundNotification):
        return _refund_callback(adapter, notification, text)
    try:
        stored = services.store_notification(notification, text)
        db.session.commit()
    except services.NotificationMismatch as error:
        db.session.rollback()
        return _reject(adapter, f"rejected_{error.kind}", f"mismatch: {error}", text, notification.out_trade_no)
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("could not store a verified %s notification", channel)
        count_callback(channel, "unavailable")
        # Not stored: a failure answer makes the channel deliver it again.
        return _answer(adapter.unavailable_answer())

    count_callback(channel, "accepted" if stored.is_new else "duplicate")
    if stored.needs_processing:
        enqueue("process_notification", stored.inbox_id)
    return _answer(adapter.accepted_answer())


def _refund_callback(adapter: PaymentChannel, notice: RefundNotification, text: str) -> Response:
    """A refund callback only prompts a check: the refund job asks the channel."""
    try:
        refund_id = services.refund_for_notification(notice)
    except services.NotificationMismatch as error:
        db.session.rollback()
        return _reject(adapter, "rejected_refund_mismatch", f"mismatch: {error}", text, notice.out_trade_no)
    db.session.commit()
    count_callback(adapter.name, "refund_accepted")
    if refund_id is not None:
        enqueue("execute_refund", refund_id)
    return _answer(adapter.accepted_answer())
