"""Boundary steps of reconciliation: they talk to a channel and commit, like
app/payments/resolution.py. Call them from jobs, commands and views only.

No transaction is open while a bill downloads: the embedded emulator answers from the
same SQLite database, and a channel may take its time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta

from flask import current_app
from sqlalchemy import select

from app.config import CHANNELS
from app.extensions import db
from app.payments import resolution
from app.payments.channels.base import BillNotReady, ChannelError, TradeState
from app.payments.models import OrphanPayment, PaymentAttempt
from app.payments.registry import get_channel
from app.payments.settlement import Settlement, settle_payment
from app.reconciliation.matching import KIND_ORDER, Finding, bill_days_due, expected_window, match_bill
from app.reconciliation.services import (claim_bill_day, our_records, record_check_outcome, record_failure,
                                         record_run, unknown_refund_of)
from app.timeutil import beijing, from_aware, now

log = logging.getLogger(__name__)

# A day whose bill could not be had is tried again this much later; a claimed day whose
# job was lost, too.
BILL_RETRY = timedelta(minutes=30)


@dataclass(frozen=True)
class RunOutcome:
    channel: str
    bill_date: date
    lines_checked: int = 0
    findings: tuple[Finding, ...] = field(default=())
    new: int = 0
    cleared: int = 0
    reopened: int = 0
    error: str | None = None
    not_ready: bool = False


def midnight_buffer() -> timedelta:
    return timedelta(seconds=current_app.config["RECONCILE_MIDNIGHT_BUFFER_SECONDS"])


def reconcile_day(channel: str, bill_date: date) -> RunOutcome:
    """Download the bills of ``bill_date`` and the day before, match them against our
    records and store the run; commits. A bill not ready or a channel error is
    recorded on the run and returned, never raised."""
    db.session.commit()
    adapter = get_channel(channel)
    try:
        bill = adapter.download_bill(bill_date)
        previous_bill = adapter.download_bill(bill_date - timedelta(days=1))
    except BillNotReady as error:
        message = f"the bill is not ready yet: {error}"
        record_failure(channel, bill_date, message, now(), BILL_RETRY)
        db.session.commit()
        return RunOutcome(channel, bill_date, error=message, not_ready=True)
    except ChannelError as error:
        message = f"{type(error).__name__}: {error}"
        record_failure(channel, bill_date, message, now(), BILL_RETRY)
        db.session.commit()
        log.warning("reconciliation of %s %s failed: %s", channel, bill_date, message)
        return RunOutcome(channel, bill_date, error=message)
    window = expected_window(bill_date, midnight_buffer())
    seen_at = now()  # the run's time: when it read our records
    payments, refunds = our_records(channel, bill, window)
    findings = sorted(match_bill(bill, previous_bill, payments, refunds, window),
                      key=lambda finding: (KIND_ORDER[finding.kind], finding.reference))
    summary = record_run(channel, bill_date, len(bill), findings, seen_at)
    db.session.commit()
    log.info("reconciled %s %s: %d line(s), %d discrepancy(ies)", channel, bill_date, len(bill), len(findings))
    return RunOutcome(channel, bill_date, len(bill), tuple(findings), summary.new, summary.cleared,
                      summary.reopened)


def channel_day(channel: str, bill_date: date) -> str:
    """A job's one argument: ``"alipay-2026-11-20"`` (RQ job ids allow letters, digits,
    ``_`` and ``-`` only, and the argument is part of the id)."""
    return f"{channel}-{bill_date.isoformat()}"


def parse_channel_day(argument: str) -> tuple[str, date]:
    """The (channel, day) of a `channel_day` argument; ValueError if it is not one."""
    channel, _, day = argument.partition("-")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    return channel, date.fromisoformat(day)


def claim_due_days(channels: tuple[str, ...]) -> list[str]:
    """Claim every recent day of ``channels`` whose bill should be out and has no
    finished run; flushes. Returns the jobs' arguments (see `channel_day`)."""
    moment = now()
    config = current_app.config
    days = bill_days_due(beijing(moment), config["RECONCILE_AFTER_HOUR"], config["RECONCILE_LOOKBACK_DAYS"])
    return [channel_day(channel, day) for channel in channels for day in days
            if claim_bill_day(channel, day, moment, BILL_RETRY)]


def recheck_attempt(attempt_id: int) -> Settlement:
    """Ask the channel about an attempt we do not have as succeeded, whatever its
    status, and settle it if the channel has it paid for the amount we asked; the
    outcome is written on the attempt's open discrepancies, for staff. Commits.

    An open attempt takes the ordinary active query. A closed or failed one is settled
    like a late payment (the transition table allows it: money the channel confirms is
    never refused by our bookkeeping), unless some of the money has gone back already:
    the channel reports a refund of the trade, or its bill showed a refund we have no
    record of (made in the merchant portal, say). Settling then would grant a course,
    or refund a second time, for money we no longer hold. Those, and a different
    amount, are left for staff.
    """
    settlement = _recheck(attempt_id)
    record_check_outcome(attempt_id, settlement.outcome, now())
    db.session.commit()
    return settlement


def _recheck(attempt_id: int) -> Settlement:
    attempt = db.session.get(PaymentAttempt, attempt_id)
    if attempt is None or attempt.status == "succeeded":
        return Settlement("nothing to ask: no such attempt, or already succeeded")
    if attempt.status == "created":
        return resolution.query_attempt(attempt_id)
    if db.session.scalar(select(OrphanPayment.id).where(OrphanPayment.attempt_id == attempt_id)) is not None:
        # Held as an orphan payment already (e.g. an amount we never asked for): a
        # second settlement would book it twice; staff settle it there.
        return Settlement("held for staff as an orphan payment")
    channel, out_trade_no, amount_fen = attempt.channel, attempt.out_trade_no, attempt.amount_fen
    try:
        status = resolution.call_channel(channel, "query", lambda adapter: adapter.query(out_trade_no))
    except ChannelError as error:
        return Settlement(f"query failed ({type(error).__name__}); ask again later")
    if status.state is not TradeState.PAID or status.out_trade_no != out_trade_no:
        return Settlement(f"the channel says {status.state.value}: nothing to settle")
    if status.amount_fen != amount_fen:
        return Settlement(f"the channel has it paid for {status.amount_fen} fen, not {amount_fen}: left for staff")
    if status.refunded:
        return Settlement("the channel has it paid but reports a refund of it: not settled, left for staff")
    unknown_refund = unknown_refund_of(channel, out_trade_no)
    if unknown_refund is not None:
        return Settlement(f"the channel has it paid, but its bill shows a refund of it we have no record of "
                          f"(discrepancy #{unknown_refund}): not settled, left for staff")
    paid_at = from_aware(status.paid_at) if status.paid_at else None
    return settle_payment(attempt_id, status.channel_trade_no or "", amount_fen, paid_at)
