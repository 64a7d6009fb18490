"""The alert e-mails: one to each active admin when an episode opens, one when it
clears. Flush only (each ends in `app.mail.services.queue_email`).

Keyed by episode, event and admin (``alert:12:fired:3``), so a round that runs twice
queues nothing new. Written in English, like the back office they point to.
"""
from __future__ import annotations

from flask import render_template
from flask_babel import force_locale
from sqlalchemy import select

from app.accounts.models import User
from app.alerts.checks import Alert
from app.alerts.episodes import Change, Changes
from app.extensions import db
from app.mail.notices import site_link
from app.mail.services import queue_email

LOCALE = "en"


def admin_recipients() -> list[tuple[int, str, str]]:
    """(id, e-mail, name) of every active admin."""
    return [tuple(row) for row in db.session.execute(
        select(User.id, User.email, User.display_name)
        .where(User.role == "admin", User.is_active_account.is_(True))
        .order_by(User.id))]


def _queue(change: Change, event: str, link: str, recipients: list[tuple[int, str, str]]) -> int:
    label = "Alert" if event == "fired" else "Cleared"
    subject = f"[CourseCashier] {label}: {change.message}"
    queued = 0
    for user_id, email, name in recipients:
        with force_locale(LOCALE):
            body = render_template("mail/alert.txt", name=name, event=event, change=change, link=link)
        if queue_email(f"alert:{change.episode_id}:{event}:{user_id}", f"alert_{event}", email, subject,
                       body, LOCALE) is not None:
            queued += 1
    return queued


def queue_alert_emails(changes: Changes, firing: tuple[Alert, ...]) -> int:
    """Queue the e-mails of the episodes ``changes`` opened and closed; returns how many
    messages were added."""
    if not changes.opened and not changes.cleared:
        return 0
    recipients = admin_recipients()
    alerts = {alert.key: alert for alert in firing}
    queued = 0
    for change in changes.opened:
        alert = alerts[change.key]
        queued += _queue(change, "fired", site_link(alert.endpoint, **dict(alert.link_args)), recipients)
    for change in changes.cleared:
        queued += _queue(change, "cleared", site_link("admin.index"), recipients)
    return queued
