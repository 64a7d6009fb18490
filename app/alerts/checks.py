"""The alert conditions of issue 11, each read from the database at a moment (failed
jobs from Redis, counted by the caller). Nothing here writes.

Each check returns the alerts firing now, each with a message for staff, a severity and
the back-office page where they can act. The exact conditions (README "Alerts"):

- **channel silence**, per enabled channel: an attempt is *pending* when it is open
  (``created``), its order still waits for payment (``pending``: a superseded QR of an
  order paid or closed meanwhile waits for nothing), its QR has not reached its deadline
  (past it, the channel takes no payment and sends no callback), and it was created at
  least ALERT_CALLBACK_SILENCE_MINUTES ago, so it had the whole window to be paid. The
  alert fires when at least ALERT_CALLBACK_SILENCE_MIN_PENDING such attempts wait (one
  abandoned QR code on a quiet night is not a silent channel) and the channel's latest
  inbox row is older than the window (or there is none); once fired, it holds until the
  channel's next callback. The window must be shorter than ORDER_TTL_MINUTES.
- **success rate**: orders created in the hour that ended ORDER_TTL_MINUTES ago (each
  has passed its payment deadline, so its outcome is known); of those that started a
  payment, the share paid, as `app.analytics.measures.SuccessRate`. Fires below
  ALERT_SUCCESS_RATE_BPS once at least ALERT_SUCCESS_RATE_MIN_ORDERS started one; with
  fewer, the rate is unknown and an open episode stays open.
- **failed jobs**: jobs in the failed registries of our RQ queues (the failed-jobs page's
  list): a requeue or a removal deals with one. Inline jobs (no Redis) leave none: what
  they fail to do the sweep finds again in the database (the inbox alert covers callbacks).
- **reconciliation discrepancies**: any still ``open``.
- **unprocessed callbacks**: inbox rows still ``received`` ALERT_INBOX_AGE_MINUTES after
  they arrived (the sweep re-runs them after a minute already).
- **job queue unreachable**: Redis is configured and cannot be read (the failed-jobs
  alert is then unknown, and the periodic round delivers due e-mail itself).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import and_, case, func, select

from app.alerts.models import AlertEpisode
from app.analytics.measures import SuccessRate, percent_text
from app.checkout.models import Order
from app.extensions import db
from app.jobs.queues import failed_job_count
from app.payments.models import InboxNotification, PaymentAttempt
from app.payments.registry import enabled_channels
from app.reconciliation.models import Discrepancy
from app.timeutil import beijing

log = logging.getLogger(__name__)

CRITICAL = "critical"
WARNING = "warning"

CHANNEL_SILENCE = "channel_silence"
SUCCESS_RATE = "success_rate"
FAILED_JOBS = "failed_jobs"
DISCREPANCIES = "discrepancies"
STALE_INBOX = "stale_inbox"
QUEUE_UNREACHABLE = "queue_unreachable"
KINDS = (CHANNEL_SILENCE, SUCCESS_RATE, FAILED_JOBS, DISCREPANCIES, STALE_INBOX, QUEUE_UNREACHABLE)
SUCCESS_RATE_WINDOW = timedelta(hours=1)
# In English whatever DEFAULT_LOCALE says, like the back office the alerts belong to.
CHANNEL_NAMES = {"alipay": "Alipay", "wechat": "WeChat Pay"}


@dataclass(frozen=True)
class Alert:
    """A condition firing now. ``key`` is the kind and its subject (one channel's
    silence is not another's); the link is an endpoint and its arguments."""

    key: str
    kind: str
    severity: str
    message: str
    endpoint: str
    link_text: str
    link_args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Evaluation:
    """The alerts firing, and the kinds that could not be checked (Redis down): an
    episode of an unknown kind is neither opened nor closed."""

    firing: tuple[Alert, ...]
    unknown: frozenset[str] = frozenset()


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def open_silences() -> dict[str, datetime]:
    """When each channel's open silence episode fired, by channel."""
    prefix = f"{CHANNEL_SILENCE}:"
    return {key.removeprefix(prefix): fired_at for key, fired_at in db.session.execute(
        select(AlertEpisode.key, AlertEpisode.fired_at)
        .where(AlertEpisode.kind == CHANNEL_SILENCE, AlertEpisode.cleared_at.is_(None)))}


def channel_silence(moment: datetime) -> list[Alert]:
    """Fires as the module says; once fired, it holds until the channel's next callback
    (not until the waiting QR codes expire, which would clear it while the channel is
    still silent and fire it again with the next ones)."""
    window = timedelta(minutes=current_app.config["ALERT_CALLBACK_SILENCE_MINUTES"])
    cutoff = moment - window
    channels = enabled_channels()
    if not channels:
        return []
    pending = dict(db.session.execute(
        select(PaymentAttempt.channel, func.count(PaymentAttempt.id))
        .join(Order, Order.id == PaymentAttempt.order_id)
        .where(PaymentAttempt.status == "created", Order.status == "pending",
               PaymentAttempt.created_at <= cutoff, PaymentAttempt.expires_at > moment,
               PaymentAttempt.channel.in_(channels))
        .group_by(PaymentAttempt.channel)
    ).all())
    fired = open_silences()
    alerts = []
    for channel in channels:
        waiting = pending.get(channel, 0)
        enough = waiting >= current_app.config["ALERT_CALLBACK_SILENCE_MIN_PENDING"]
        if not enough and channel not in fired:
            continue
        last = db.session.scalar(select(func.max(InboxNotification.received_at))
                                 .where(InboxNotification.channel == channel))
        if channel in fired:
            if last is not None and last >= fired[channel]:
                continue  # the channel spoke since the alert fired
        elif last is not None and last > cutoff:
            continue
        label = CHANNEL_NAMES.get(channel, channel)
        since = (f"for {_minutes(moment - last)} minutes" if last is not None
                 else f"on record (over {_minutes(window)} minutes)")
        alerts.append(Alert(
            f"{CHANNEL_SILENCE}:{channel}", CHANNEL_SILENCE, CRITICAL,
            f"No {label} callback {since} while {_plural(waiting, 'attempt')} "
            f"{'is' if waiting == 1 else 'are'} pending",
            "attempt.index_view", "Payment attempts",
        ))
    return alerts


def success_rate_window(moment: datetime) -> tuple[datetime, datetime]:
    """The creation times [start, end) of the orders the success-rate alert reads: the
    hour that ended ORDER_TTL_MINUTES before ``moment``."""
    end = moment - timedelta(minutes=current_app.config["ORDER_TTL_MINUTES"])
    return end - SUCCESS_RATE_WINDOW, end


def recent_success_rate(moment: datetime) -> SuccessRate:
    start, end = success_rate_window(moment)
    succeeded_order = func.max(case((PaymentAttempt.status == "succeeded", 1), else_=0))
    per_order = (
        select(PaymentAttempt.order_id, succeeded_order.label("succeeded"))
        .join(Order, Order.id == PaymentAttempt.order_id)
        # The attempts' own creation time bounds them too (an attempt is made while its
        # order is pending), so both tables are read by a range of an index.
        .where(Order.created_at >= start, Order.created_at < end, PaymentAttempt.created_at >= start)
        .group_by(PaymentAttempt.order_id)
        .subquery()
    )
    started, succeeded = db.session.execute(
        select(func.count(), func.coalesce(func.sum(per_order.c.succeeded), 0))
    ).one()
    return SuccessRate(started=int(started), succeeded=int(succeeded))


def success_rate(moment: datetime) -> list[Alert] | None:
    """None when too few orders started a payment in the hour to tell: an open episode
    then neither clears nor stays announced as new (a rate hovering around the minimum
    would otherwise clear and fire again, e-mailing admins each time)."""
    config = current_app.config
    rate = recent_success_rate(moment)
    threshold = config["ALERT_SUCCESS_RATE_BPS"]
    if rate.started < config["ALERT_SUCCESS_RATE_MIN_ORDERS"] or rate.basis_points is None:
        return None
    if rate.basis_points >= threshold:
        return []
    start, end = (beijing(edge).strftime("%H:%M") for edge in success_rate_window(moment))
    return [Alert(
        SUCCESS_RATE, SUCCESS_RATE, WARNING,
        f"Payment success rate {rate.percent} ({rate.succeeded} of {_plural(rate.started, 'order')} "
        f"created {start}–{end} Beijing), below {percent_text(threshold)}",
        "analytics.index", "Payment analytics",
    )]


def failed_jobs(count: int) -> list[Alert]:
    if not count:
        return []
    return [Alert(FAILED_JOBS, FAILED_JOBS, WARNING,
                  f"{_plural(count, 'failed job')} not yet requeued or removed", "failed_jobs.index",
                  "Failed jobs")]


def read_failed_job_count() -> int | None:
    """The failed jobs in Redis (0 when jobs run inline); None when Redis cannot say."""
    try:
        return failed_job_count()
    except RedisError as error:
        log.warning("alerts: Redis unavailable: %s", type(error).__name__)
        return None


def discrepancies() -> list[Alert]:
    count = db.session.scalar(select(func.count(Discrepancy.id)).where(Discrepancy.status == "open")) or 0
    if not count:
        return []
    noun = "discrepancy" if count == 1 else "discrepancies"
    return [Alert(DISCREPANCIES, DISCREPANCIES, WARNING, f"{count} reconciliation {noun} unresolved",
                  "reconciliation.index", "Reconciliation queue", (("status", "open"),))]


def stale_inbox(moment: datetime) -> list[Alert]:
    cutoff = moment - timedelta(minutes=current_app.config["ALERT_INBOX_AGE_MINUTES"])
    count, oldest = db.session.execute(
        select(func.count(InboxNotification.id), func.min(InboxNotification.received_at))
        .where(and_(InboxNotification.status == "received", InboxNotification.received_at < cutoff))
    ).one()
    if not count:
        return []
    return [Alert(STALE_INBOX, STALE_INBOX, CRITICAL,
                  f"{_plural(count, 'callback')} not processed, the oldest received "
                  f"{_minutes(moment - oldest)} minutes ago",
                  "inbox.index_view", "Notification inbox")]


def evaluate(moment: datetime, failed_job_total: int | None) -> Evaluation:
    """Every alert firing at ``moment``; ``failed_job_total`` None when Redis could not
    be read (see `read_failed_job_count`)."""
    firing = channel_silence(moment)
    unknown = set()
    rate = success_rate(moment)
    if rate is None:
        unknown.add(SUCCESS_RATE)
    else:
        firing.extend(rate)
    if failed_job_total is None:
        unknown.add(FAILED_JOBS)
        firing.append(Alert(QUEUE_UNREACHABLE, QUEUE_UNREACHABLE, CRITICAL,
                            "Redis, the job queue, cannot be reached: callbacks, refunds and e-mails wait "
                            "for the periodic round", "failed_jobs.index", "Failed jobs"))
    else:
        firing.extend(failed_jobs(failed_job_total))
    firing.extend(discrepancies())
    firing.extend(stale_inbox(moment))
    return Evaluation(tuple(firing), frozenset(unknown))
