"""Delivery of one outbox message, as the `deliver_email` job runs it. A boundary:
it commits the claim before sending (so a second worker sees it) and the outcome after.

The network call happens between two commits, outside any transaction, so a slow SMTP
server holds no row lock. A worker that dies between its claim and the outcome leaves
the message ``sending``; once its lease lapses the periodic round claims it again.
If the crash came after the server accepted the message, the learner may get it twice:
the unavoidable at-least-once of e-mail. Both copies carry the same Message-ID (made
from the outbox key), so mail clients show one.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from flask import current_app

from app.extensions import db
from app.mail import backends, services

log = logging.getLogger(__name__)


def mail_settings(config: Mapping[str, Any]) -> backends.MailSettings:
    return backends.MailSettings(
        backend=config["MAIL_BACKEND"],
        outbox_dir=config["MAIL_OUTBOX_DIR"],
        sender=config["MAIL_FROM"],
        server=config.get("MAIL_SERVER"),
        port=config["MAIL_PORT"],
        username=config.get("MAIL_USERNAME"),
        password=config.get("MAIL_PASSWORD"),
        use_tls=config["MAIL_USE_TLS"],
        use_starttls=config["MAIL_USE_STARTTLS"],
        timeout_seconds=float(config["MAIL_TIMEOUT_SECONDS"]),
    )


def deliver(message_id: int) -> str:
    """Claim, send and record one message; the outcome in a word (for the job log)."""
    settings = mail_settings(current_app.config)
    held = services.claim(message_id, settings.sender)
    db.session.commit()
    if held is None:
        return "not due"
    try:
        backends.send(settings, held.envelope)
    except backends.DeliveryError as error:
        status = services.record_failure(held, str(error), current_app.config["MAIL_MAX_ATTEMPTS"])
        db.session.commit()
        # The reason and the attempt, never the recipient's words.
        log.warning("e-mail %s attempt %s not delivered (%s): %s", message_id, held.attempt, status, error)
        return status or "taken over"
    recorded = services.record_sent(held)
    db.session.commit()
    return "sent" if recorded else "sent, but the claim had been taken over"
