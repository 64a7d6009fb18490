"""Asynchronous notifications, sent the way Alipay sends them.

A paid trade owes one ``trade_status_sync`` notification, POSTed form-encoded to its
notify_url and signed with the emulator's key (``sign`` and ``sign_type`` left out of the
signed text). It counts as delivered only when the answer body is exactly ``success``;
anything else is retried on ``GATEWAY_NOTIFY_RETRY_SECONDS`` (Alipay's 4m…15h schedule,
compressed), with the same notify_id every time.

Each attempt runs in three steps: claim it and commit, POST with no transaction open,
record the answer in a fresh transaction. The order matters on SQLite, where every
transaction holds the write lock (``BEGIN IMMEDIATE``) and the merchant's notify view,
served by this same process, needs that lock to store what we send.

Two modes: with ``GATEWAY_NOTIFY_SYNC`` the first attempt runs inline in the confirm
request and retries only when ``deliver_due_notifications()`` is called (tests);
otherwise one daemon thread per app sends and retries in the background.
"""
from __future__ import annotations

import logging
import secrets
import threading
from datetime import datetime, timedelta
from typing import Sequence
from urllib.parse import urlencode

import requests
from flask import Flask, current_app
from sqlalchemy import select, update

from app.extensions import db
from app.gateway.identity import alipay_identity
from app.gateway.models import GatewayAlipayTrade, GatewayNotification
from app.money import format_yuan
from app.payments.channels.alipay import format_beijing_time, signing_content
from app.payments.channels.crypto import rsa2_sign
from app.timeutil import as_aware, now

log = logging.getLogger(__name__)

DEFAULT_RETRY_SECONDS: Sequence[int] = (2, 5, 15, 60, 300, 900)
DEFAULT_TIMEOUT_SECONDS = 5.0
POLL_SECONDS = 1.0
_ANSWER_LIMIT = 200
_DUE_BATCH = 50
_THREAD_KEY = "cashier.gateway_notifier"
_start_lock = threading.Lock()


def _beijing_text(moment: datetime) -> str:
    return format_beijing_time(as_aware(moment))


def notification_form(
    trade: GatewayAlipayTrade, notify_id: str, notify_time: datetime
) -> dict[str, str]:
    """The signed form fields of a TRADE_SUCCESS notification for a paid ``trade``."""
    identity = alipay_identity()
    amount = format_yuan(trade.total_amount_fen)
    assert trade.paid_at is not None and trade.opened_at is not None and trade.trade_no
    fields = {
        "notify_time": _beijing_text(notify_time),
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "app_id": trade.app_id,
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "buyer_logon_id": trade.buyer_logon_id or "",
        "seller_id": identity.seller_id,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": amount,
        "receipt_amount": amount,
        "buyer_pay_amount": amount,
        "invoice_amount": amount,
        "gmt_create": _beijing_text(trade.opened_at),
        "gmt_payment": _beijing_text(trade.paid_at),
        "subject": trade.subject,
    }
    content = signing_content(fields, exclude=("sign", "sign_type"))
    fields["sign"] = rsa2_sign(content.encode("utf-8"), identity.gateway_private_key)
    return fields


def schedule_notification(trade: GatewayAlipayTrade) -> int | None:
    """Record the notification a just-paid trade owes, due now. Flushes, never commits.

    Returns its id, or None when the trade has no notify_url (nothing is owed).
    """
    if not trade.notify_url:
        return None
    moment = now()
    notification = GatewayNotification(
        trade_id=trade.id,
        notify_id=secrets.token_hex(16),
        notify_url=trade.notify_url,
        attempts=0,
        created_at=moment,
        next_attempt_at=moment,
    )
    db.session.add(notification)
    db.session.flush()
    return notification.id


def _retry_delays() -> Sequence[int]:
    return current_app.config.get("GATEWAY_NOTIFY_RETRY_SECONDS", DEFAULT_RETRY_SECONDS)


def _claim(notification_id: int) -> tuple[str, dict[str, str], int] | None:
    """Take the next attempt of a due notification; (url, form, attempt number) or None.

    Commits: the attempt and its retry time are recorded before anything is sent, so a
    crash mid-POST still leaves a retry scheduled, and two senders never both claim it.
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
    seen = notification.attempts
    delays = _retry_delays()
    next_attempt_at = moment + timedelta(seconds=delays[seen]) if seen < len(delays) else None
    form = notification_form(notification.trade, notification.notify_id, moment)
    url = notification.notify_url
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
            form_body=urlencode(form),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return (url, form, seen + 1) if claimed == 1 else None


def _post(url: str, form: dict[str, str]) -> tuple[bool, str]:
    """Send one notification; (delivered, a short record of the answer)."""
    session: requests.Session = current_app.extensions["cashier.gateway_http"]
    timeout = current_app.config.get("GATEWAY_NOTIFY_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
    try:
        response = session.post(url, data=form, timeout=timeout)
    except requests.RequestException as exc:
        return False, type(exc).__name__
    body = response.text
    # Kept short and on one line: the record is for the trade list, not an archive.
    excerpt = " ".join(body.split())[:_ANSWER_LIMIT]
    return body == "success", f"HTTP {response.status_code}: {excerpt}"


def attempt_delivery(notification_id: int) -> bool | None:
    """One delivery attempt if the notification is due: True delivered, False refused or
    unreachable (a retry is scheduled unless the schedule is used up), None not due.

    Commits; call it with no transaction holding changes you still want to roll back.
    """
    claim = _claim(notification_id)
    if claim is None:
        return None
    url, form, attempt = claim
    delivered, answer = _post(url, form)
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
        "gateway notification %s attempt %d to %s: %s",
        notification_id,
        attempt,
        url,
        "delivered" if delivered else "not accepted",
    )
    return delivered


def deliver_due_notifications() -> int:
    """Attempt every notification whose retry time has come (by the app clock).

    Returns the number of attempts made. Commits; needs an app context.
    """
    due_ids = db.session.scalars(
        select(GatewayNotification.id)
        .where(
            GatewayNotification.delivered_at.is_(None),
            GatewayNotification.next_attempt_at <= now(),
        )
        .order_by(GatewayNotification.next_attempt_at)
        .limit(_DUE_BATCH)
    ).all()
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
        attempt_delivery(notification_id)
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
