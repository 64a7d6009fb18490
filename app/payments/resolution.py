"""Asking a channel and acting on its answer: boundary steps, not services.

Each step commits: the caller's transaction ends before the network call, so no row
lock (or SQLite's write lock, which the embedded emulator needs too) is held while we
wait on a channel; what the answer changes is then committed in a transaction of its
own. Call these only from views, jobs and commands. None of them enqueues: a step that
opens a refund returns its id in the `Settlement` and the caller enqueues it.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Callable, TypeVar

from app.checkout.models import Order
from app.extensions import db
from app.payments import health
from app.payments.channels.base import (
    ChannelError,
    ChannelRefused,
    PaymentChannel,
    RefundResult,
    SignatureError,
    TradeState,
    UnknownResult,
)
from app.payments.models import PaymentAttempt, Refund
from app.payments.notify_urls import notify_url
from app.payments.refunds import apply_refund_result, fail_refund, note_refund_unknown, start_refund
from app.payments.registry import get_channel
from app.payments.settlement import (
    Settlement,
    apply_trade_status,
    close_attempt,
    close_order,
    live_attempt_ids,
    schedule_next_query,
)
from app.timeutil import now

log = logging.getLogger(__name__)

T = TypeVar("T")

# A QR the channel never saw scanned may outlive our deadline by its own rounding (Alipay
# counts timeout_express in whole minutes): only after this margin is "not found" final.
UNSCANNED_QR_GRACE = timedelta(minutes=2)


def call_channel(channel: str, what: str, operation: Callable[[PaymentChannel], T]) -> T:
    """Run one channel call with no transaction open, and record the channel's health.

    Commits the caller's transaction first. Timeouts, 5xx and unverifiable answers count
    as failures; a refusal is an answer from a working channel. Raises ChannelError.
    """
    db.session.commit()
    try:
        result = operation(get_channel(channel))
    except (UnknownResult, SignatureError) as error:
        if health.record_failure(channel, f"{what}: {error}"):
            log.warning("channel %s is resting after repeated failures", channel)
        db.session.commit()
        raise
    except ChannelRefused:
        health.record_success(channel)
        db.session.commit()
        raise
    health.record_success(channel)
    db.session.commit()
    return result


def _open_attempt(attempt_id: int) -> PaymentAttempt | None:
    attempt = db.session.get(PaymentAttempt, attempt_id)
    return attempt if attempt is not None and attempt.status == "created" else None


def query_attempt(attempt_id: int) -> Settlement:
    """Active query: ask the channel about an open attempt and settle what it says."""
    attempt = _open_attempt(attempt_id)
    if attempt is None:
        db.session.commit()
        return Settlement("attempt is not open")
    channel, out_trade_no = attempt.channel, attempt.out_trade_no
    try:
        status = call_channel(channel, "query", lambda adapter: adapter.query(out_trade_no))
    except ChannelError as error:
        schedule_next_query(attempt_id)
        db.session.commit()
        return Settlement(f"query failed ({type(error).__name__}); will ask again")
    settlement = apply_trade_status(attempt_id, status)
    schedule_next_query(attempt_id)
    db.session.commit()
    return settlement


def close_at_channel(attempt_id: int) -> Settlement:
    """Close an open attempt at its channel, then here. A channel that refuses because
    the trade was paid meanwhile gets asked, and the payment is settled instead."""
    attempt = _open_attempt(attempt_id)
    if attempt is None:
        db.session.commit()
        return Settlement("attempt is not open")
    channel, out_trade_no = attempt.channel, attempt.out_trade_no
    still_payable_until = attempt.expires_at + UNSCANNED_QR_GRACE
    try:
        state = call_channel(channel, "close", lambda adapter: adapter.close(out_trade_no))
    except ChannelRefused:
        return query_attempt(attempt_id)
    except ChannelError as error:
        db.session.commit()
        return Settlement(f"close failed ({type(error).__name__}); will try again")
    if state is TradeState.NOT_FOUND and now() < still_payable_until:
        # Alipay has no trade until the QR is scanned, so it cannot close one; the QR
        # itself stays payable until its own expiry. Keep asking about it till then.
        schedule_next_query(attempt_id)
        db.session.commit()
        return Settlement("not known to the channel yet; kept open until its QR expires")
    close_attempt(attempt_id)
    db.session.commit()
    return Settlement("closed")


def expire_order(order_id: int) -> Settlement:
    """At the deadline: the channel first (a paid answer wins), then close everything.

    An attempt whose channel does not answer keeps the order pending; the next round
    tries again, so an order is never closed while its money may be on the way.
    """
    order = db.session.get(Order, order_id)
    if order is None or order.status != "pending" or now() < order.expires_at:
        db.session.commit()
        return Settlement("not due")
    refund_id = None
    for attempt_id in live_attempt_ids(order_id):
        settlement = query_attempt(attempt_id)
        refund_id = refund_id or settlement.refund_id
        if _open_attempt(attempt_id) is not None:
            settlement = close_at_channel(attempt_id)
            refund_id = refund_id or settlement.refund_id
    closed = close_order(order_id)
    db.session.commit()
    order = db.session.get(Order, order_id)
    outcome = "closed" if closed else f"left {order.status if order else 'missing'}"
    return Settlement(outcome, refund_id)


def run_refund(refund_id: int) -> str:
    """Send (or re-check) a refund at its channel and record the answer.

    The first try sends it; later tries ask about it first and send it again only when
    the channel has never heard of it. Either way the same out_refund_no goes out, so
    the money cannot go back twice.
    """
    request = start_refund(refund_id)
    if request is None:
        db.session.commit()
        return "nothing to send"
    refund = db.session.get(Refund, refund_id)
    assert refund is not None
    channel, first_try = refund.attempt.channel, refund.tries == 1
    request = replace(request, notify_url=notify_url(channel))

    def send(adapter: PaymentChannel) -> RefundResult:
        if not first_try:
            known = adapter.query_refund(request.out_trade_no, request.out_refund_no)
            if known is not None:
                return known
        return adapter.refund(request)

    try:
        result = call_channel(channel, "refund", send)
    except ChannelRefused as refusal:
        if not refusal.verified:
            note_refund_unknown(refund_id, f"unsigned refusal {refusal.code}")
            db.session.commit()
            return "unverified refusal; will check again"
        fail_refund(refund_id, f"{refusal.code}: {refusal.message}")
        db.session.commit()
        return f"refused: {refusal.code}"
    except ChannelError as error:
        note_refund_unknown(refund_id, f"{type(error).__name__}: {error}")
        db.session.commit()
        return "unknown; will check again"
    outcome = apply_refund_result(refund_id, result)
    db.session.commit()
    return outcome
