"""Asynchronous notifications to the merchant, for both emulated channels.

A paid trade owes one notification, and so does a WeChat refund that named a
notify_url (REFUND.SUCCESS); all are kept in ``gateway_notifications`` whatever their
channel. The channel decides what goes on the wire and what counts as accepted
(``alipay_notify``: a signed form, answer body exactly ``success``; ``wechat_notify``: a
signed, encrypted JSON event, answer HTTP 200 or 204). Anything else is retried on
``GATEWAY_NOTIFY_RETRY_SECONDS`` (Alipay's 4m…24h, or WeChat's 15s…6h, compressed to
the same short schedule for both), re-signed at each attempt, with the same notify_id /
event id every time.

Each attempt runs in three steps: claim it and commit, POST with no transaction open,
record the answer in a fresh transaction. The order matters on SQLite, where every
transaction holds the write lock (``BEGIN IMMEDIATE``) and the merchant's notify view,
served by this same process, needs that lock to store what we send.

Two modes: with ``GATEWAY_NOTIFY_SYNC`` the first attempt runs inline in the request
that committed the payment (the confirm page) or the refund (the refund API), and
retries only when ``deliver_due_notifications()`` is called (tests); otherwise one
daemon thread per app sends and retries in the background.

Fault modes (``faults.py``) are looked up when a notification is scheduled and again
when it is claimed for an attempt, matched by the out_trade_no of the trade it is about
(for a refund callback, the refunded trade).
"""
from __future__ import annotations

import logging
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Sequence

import requests
from flask import Flask, current_app
from sqlalchemy import select, update

from app.extensions import db
from app.gateway import alipay_notify, faults, wechat_notify
from app.gateway.models import GatewayAlipayTrade, GatewayNotification
from app.gateway.outgoing import OutgoingRequest
from app.gateway.wechat_models import GatewayWechatRefund, GatewayWechatTrade
from app.timeutil import now

log = logging.getLogger(__name__)

DEFAULT_RETRY_SECONDS: Sequence[int] = (2, 5, 15, 60, 300, 900)
DEFAULT_TIMEOUT_SECONDS = 5.0
POLL_SECONDS = 1.0
_ANSWER_LIMIT = 200
_DUE_BATCH = 50
_THREAD_KEY = "cashier.gateway_notifier"
_start_lock = threading.Lock()


@dataclass(frozen=True)
class ChannelWire:
    """A channel's notification format: the request of one attempt, and whether the
    merchant's answer means "received"."""

    build_request: Callable[[GatewayNotification, datetime], OutgoingRequest]
    accepted: Callable[[requests.Response], bool]
    retry_config_key: str


WIRES: dict[str, ChannelWire] = {
    "alipay": ChannelWire(
        alipay_notify.build_request, alipay_notify.accepted, "GATEWAY_NOTIFY_RETRY_SECONDS"
    ),
    "wechat": ChannelWire(
        wechat_notify.build_request,
        wechat_notify.accepted,
        "GATEWAY_WECHAT_NOTIFY_RETRY_SECONDS",
    ),
}

Trade = GatewayAlipayTrade | GatewayWechatTrade


def schedule_notification(trade: Trade) -> int | None:
    """Record the notification a just-paid trade owes, due now. Flushes, never commits.

    Returns its id, or None when the trade has no notify_url (nothing is owed). Under
    ``drop_notify`` the row is recorded as dropped and never sent; under
    ``delay_notify`` its first attempt is due ``delay_seconds`` later.
    """
    if not trade.notify_url:
        return None
    if isinstance(trade, GatewayWechatTrade):
        notify_id = str(uuid.uuid4())
        return _schedule(
            "wechat", trade.out_trade_no, trade.notify_url, notify_id, wechat_trade_id=trade.id
        )
    notify_id = secrets.token_hex(16)
    return _schedule(
        "alipay", trade.out_trade_no, trade.notify_url, notify_id, alipay_trade_id=trade.id
    )


def schedule_refund_notification(refund: GatewayWechatRefund) -> int | None:
    """Record the REFUND.SUCCESS callback a just-made WeChat refund owes, due now.
    Flushes, never commits.

    Returns its id, or None when nothing more is owed: the refund named no notify_url,
    or it already owns its callback (a repeated out_refund_no is the same refund, and
    the unique ``wechat_refund_id`` backs this check). Fault modes apply as in
    ``schedule_notification``, matched by the refunded trade's out_trade_no.
    """
    if not refund.notify_url:
        return None
    owned = db.session.scalar(
        select(GatewayNotification.id).where(GatewayNotification.wechat_refund_id == refund.id)
    )
    if owned is not None:
        return None
    notify_id = str(uuid.uuid4())
    out_trade_no = refund.trade.out_trade_no
    return _schedule(
        "wechat", out_trade_no, refund.notify_url, notify_id, wechat_refund_id=refund.id
    )


def _schedule(
    channel: str, out_trade_no: str, notify_url: str, notify_id: str, **owner: int
) -> int:
    """Add the notification row of ``owner`` (its one owner FK), due now unless a fault
    mode drops or delays it; flush and return its id."""
    moment = now()
    active = faults.faults_for(channel, out_trade_no)
    next_attempt_at: datetime | None = moment
    last_answer = None
    if "drop_notify" in active:
        next_attempt_at, last_answer = None, faults.DROPPED_ANSWER
    elif "delay_notify" in active:
        next_attempt_at = moment + timedelta(seconds=active["delay_notify"].delay_seconds)
    notification = GatewayNotification(
        channel=channel,
        notify_id=notify_id,
        notify_url=notify_url,
        attempts=0,
        created_at=moment,
        next_attempt_at=next_attempt_at,
        last_answer=last_answer,
        **owner,
    )
    db.session.add(notification)
    db.session.flush()
    return notification.id


def _retry_delays(channel: str) -> Sequence[int]:
    delays: Sequence[int] = current_app.config.get(
        WIRES[channel].retry_config_key, DEFAULT_RETRY_SECONDS
    )
    return delays


@dataclass(frozen=True)
class _Claim:
    outgoing: OutgoingRequest
    channel: str
    attempt: int
    copies: int  # 2 under duplicate_notify


def _drop(notification_id: int) -> None:
    db.session.execute(
        update(GatewayNotification)
        .where(
            GatewayNotification.id == notification_id, GatewayNotification.delivered_at.is_(None)
        )
        .values(next_attempt_at=None, last_answer=faults.DROPPED_ANSWER)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _claim(notification_id: int, inline: bool) -> _Claim | None:
    """Take the next attempt of a due notification, or None.

    Commits: the attempt and its retry time are recorded before anything is sent, so a
    crash mid-POST still leaves a retry scheduled, and two senders never both claim it.
    An inline (first, in-request) attempt is skipped under ``shuffle_notify``.
    """
    notification = db.session.get(GatewayNotification, notification_id)
    moment = now()
    if (
        notification is None
        or notification.delivered_at is not None
        or notification.next_attempt_at is None
        or notification.next_attempt_at > moment
    ):
        db.session.rollback()
        return None
    active = faults.faults_for(notification.channel, notification.out_trade_no)
    if "drop_notify" in active:
        _drop(notification_id)
        return None
    if inline and "shuffle_notify" in active:
        db.session.rollback()  # held for a notifier round, which sends in random order
        return None
    seen = notification.attempts
    delays = _retry_delays(notification.channel)
    next_attempt_at = moment + timedelta(seconds=delays[seen]) if seen < len(delays) else None
    wire = WIRES[notification.channel]
    outgoing = wire.build_request(notification, moment)
    channel = notification.channel
    claimed = db.session.execute(
        update(GatewayNotification)
        .where(
            GatewayNotification.id == notification_id,
            GatewayNotification.attempts == seen,
            GatewayNotification.delivered_at.is_(None),
        )
        .values(
            attempts=seen + 1,
            last_attempt_at=moment,
            next_attempt_at=next_attempt_at,
            sent_body=outgoing.body.decode("utf-8"),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if claimed != 1:
        return None
    copies = 2 if "duplicate_notify" in active else 1
    return _Claim(outgoing, channel, seen + 1, copies)


def _post(outgoing: OutgoingRequest, channel: str) -> tuple[bool, str]:
    """Send one notification; (accepted, a short record of the answer)."""
    session: requests.Session = current_app.extensions["cashier.gateway_http"]
    timeout = current_app.config.get("GATEWAY_NOTIFY_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
    try:
        response = session.post(
            outgoing.url, data=outgoing.body, headers=outgoing.headers, timeout=timeout
        )
    except requests.RequestException as exc:
        return False, type(exc).__name__
    # Kept short and on one line: the record is for the trade list, not an archive.
    excerpt = " ".join(response.text.split())[:_ANSWER_LIMIT]
    return WIRES[channel].accepted(response), f"HTTP {response.status_code}: {excerpt}"


def attempt_delivery(notification_id: int, inline: bool = False) -> bool | None:
    """One delivery attempt if the notification is due: True delivered, False refused or
    unreachable (a retry is scheduled unless the schedule is used up), None not sent
    (not due, dropped or held by a fault mode).

    Commits; call it with no transaction holding changes you still want to roll back.
    """
    claim = _claim(notification_id, inline)
    if claim is None:
        return None
    delivered, answer = False, ""
    for _ in range(claim.copies):  # duplicate_notify: the same event twice
        accepted, answer = _post(claim.outgoing, claim.channel)
        delivered = delivered or accepted
    values: dict[str, object] = {"last_answer": answer[:255]}
    if delivered:
        values.update(delivered_at=now(), next_attempt_at=None)
    db.session.execute(
        update(GatewayNotification)
        .where(GatewayNotification.id == notification_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    log.info(
        "gateway %s notification %s attempt %d to %s: %s",
        claim.channel,
        notification_id,
        claim.attempt,
        claim.outgoing.url,
        "delivered" if delivered else "not accepted",
    )
    return delivered


def deliver_due_notifications() -> int:
    """Attempt every notification whose retry time has come (by the app clock), in due
    order, or in random order when any of them is under ``shuffle_notify``.

    Returns the number of attempts made. Commits; needs an app context.
    """
    due = db.session.scalars(
        select(GatewayNotification)
        .where(
            GatewayNotification.delivered_at.is_(None),
            GatewayNotification.next_attempt_at <= now(),
        )
        .order_by(GatewayNotification.next_attempt_at, GatewayNotification.id)
        .limit(_DUE_BATCH)
    ).all()
    due_ids = [notification.id for notification in due]
    if any(
        "shuffle_notify" in faults.faults_for(notification.channel, notification.out_trade_no)
        for notification in due
    ):
        faults.shuffler().shuffle(due_ids)
    db.session.rollback()  # release the read transaction (a write lock on SQLite)
    return sum(1 for notification_id in due_ids if attempt_delivery(notification_id) is not None)


# --- background mode -------------------------------------------------------------------


class _NotifierThread(threading.Thread):
    def __init__(self, app: Flask) -> None:
        super().__init__(name="gateway-notifier", daemon=True)
        self.app = app
        self.wake = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(POLL_SECONDS)
            self.wake.clear()
            if self.stopping.is_set():
                break
            with self.app.app_context():
                try:
                    deliver_due_notifications()
                except Exception:  # the loop must outlive one bad round
                    log.exception("gateway notifier round failed")
                finally:
                    db.session.remove()


def notify_after_commit(notification_id: int | None) -> None:
    """Start delivering a notification that is committed: inline in sync mode, else by
    waking the app's background notifier (started on first use)."""
    if notification_id is None:
        return
    if current_app.config.get("GATEWAY_NOTIFY_SYNC"):
        attempt_delivery(notification_id, inline=True)
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _start_lock:
        thread: _NotifierThread | None = app.extensions.get(_THREAD_KEY)
        if thread is None or not thread.is_alive():
            thread = _NotifierThread(app)
            app.extensions[_THREAD_KEY] = thread
            thread.start()
    thread.wake.set()


def stop_background_notifier(app: Flask, timeout: float = 5.0) -> None:
    """Stop the app's notifier thread if it runs (tests, clean shutdown)."""
    thread: _NotifierThread | None = app.extensions.pop(_THREAD_KEY, None)
    if thread is not None:
        thread.stopping.set()
        thread.wake.set()
        thread.join(timeout)
