"""Periodic work: what `flask jobs tick` runs once and the scheduler runs forever.

The database is the source of truth and Redis may lose jobs (DESIGN.md §8): the sweep
finds inbox rows that should have been processed by now and enqueues them again.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.jobs import enqueue
from app.payments.models import InboxNotification
from app.timeutil import now

log = logging.getLogger(__name__)

INBOX_GRACE = timedelta(seconds=60)
SWEEP_BATCH = 500


def sweep_inbox() -> int:
    """Re-enqueue unprocessed inbox rows older than the grace period; returns how many."""
    stale_ids = list(
        db.session.scalars(
            select(InboxNotification.id)
            .where(
                InboxNotification.status == "received",
                InboxNotification.received_at < now() - INBOX_GRACE,
            )
            .order_by(InboxNotification.id)
            .limit(SWEEP_BATCH)
        )
    )
    db.session.commit()  # end the read before jobs (maybe inline) open their own
    for inbox_id in stale_ids:
        enqueue("process_notification", inbox_id)
    return len(stale_ids)


def tick() -> dict[str, int]:
    return {"inbox_requeued": sweep_inbox()}


def start_background_ticker(app: Flask, interval_seconds: int = 30) -> threading.Thread:
    """The embedded mode's scheduler: a daemon thread calling `tick`."""

    def loop() -> None:
        while True:
            time.sleep(interval_seconds)
            with app.app_context():
                try:
                    tick()
                except Exception:  # noqa: BLE001 - keep ticking; the next round retries
                    log.exception("periodic tick failed")
                finally:
                    db.session.remove()

    thread = threading.Thread(target=loop, name="cashier-ticker", daemon=True)
    thread.start()
    return thread
