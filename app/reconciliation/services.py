"""Reconciliation records: our side of a bill, the outcome of a run, claims of the days
the periodic round reconciles, and staff resolving a discrepancy. Flush, never commit.

Statuses of runs and discrepancies move by compare-and-set through the ``run`` and
``discrepancy`` tables of app/payments/states.py."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable, Sequence

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.accounts.models import User
from app.audit.services import record
from app.errors import ServiceError
from app.extensions import db
from app.payments.models import PaymentAttempt, Refund
from app.payments.transitions import compare_and_set
from app.reconciliation.matching import (PAYMENT, REFUND, BillEntry, DiscrepancyKind, Finding, PaymentRecord,
                                         RefundRecord, line_reference)
from app.reconciliation.models import RESOLUTIONS, Discrepancy, ReconciliationRun

RECONCILING_STAFF = frozenset({"finance", "admin"})
# Keys per IN (...) list: well inside every backend's limit on bound parameters.
KEYS_PER_QUERY = 500


class ReconciliationError(ServiceError):
    """A reconciliation step staff cannot take."""


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    lines_checked: int
    discrepancy_ids: tuple[int, ...]  # what this run found, new or seen before
    new: int  # of which found for the first time
    cleared: int  # earlier discrepancies of the day this run no longer finds
    reopened: int = 0  # resolved ones found again, open once more


# --- our side of a bill -----------------------------------------------------------------


def _chunks(keys: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(keys), KEYS_PER_QUERY):
        yield keys[start:start + KEYS_PER_QUERY]


def our_records(channel: str, bill: Sequence[BillEntry],
                window: tuple[datetime, datetime]) -> tuple[list[PaymentRecord], list[RefundRecord]]:
    """Our record of every key on ``bill`` (whenever we made it), and every payment and
    refund of ``channel`` we completed inside ``window``: what `match_bill` needs.
    Columns only: a day's bill may name thousands of rows."""
    trade_nos = sorted({line.out_trade_no for line in bill if line.kind != REFUND})
    refund_nos = sorted({line_reference(line) for line in bill if line.kind == REFUND})
    start, end = window
    payments: dict[int, PaymentRecord] = {}
    payment_columns = select(PaymentAttempt.id, PaymentAttempt.out_trade_no, PaymentAttempt.amount_fen,
                             PaymentAttempt.status, PaymentAttempt.fee_fen, PaymentAttempt.succeeded_at,
                             PaymentAttempt.channel_trade_no)
    in_window = and_(PaymentAttempt.status == "succeeded", PaymentAttempt.succeeded_at >= start,
                     PaymentAttempt.succeeded_at < end)
    for condition in [in_window] + [PaymentAttempt.out_trade_no.in_(chunk) for chunk in _chunks(trade_nos)]:
        for row in db.session.execute(payment_columns.where(PaymentAttempt.channel == channel, condition)):
            payments[row.id] = PaymentRecord(*row)
    refunds: dict[int, RefundRecord] = {}
    refund_columns = (
        select(Refund.id, Refund.attempt_id, PaymentAttempt.out_trade_no, Refund.refund_no,
               # The channel's part: a balance part (app/wallet) is not on its bill.
               (Refund.amount_fen - Refund.wallet_paid_fen - Refund.wallet_bonus_fen).label("amount_fen"),
               Refund.status, Refund.fee_fen, Refund.succeeded_at)
        .join(PaymentAttempt, PaymentAttempt.id == Refund.attempt_id)
        .where(Refund.amount_fen > Refund.wallet_paid_fen + Refund.wallet_bonus_fen)
    )
    refund_window = and_(Refund.status == "succeeded", Refund.succeeded_at >= start, Refund.succeeded_at < end)
    for condition in [refund_window] + [Refund.refund_no.in_(chunk) for chunk in _chunks(refund_nos)]:
        for row in db.session.execute(refund_columns.where(PaymentAttempt.channel == channel, condition)):
            refunds[row.id] = RefundRecord(*row)
    return list(payments.values()), list(refunds.values())


# --- runs -------------------------------------------------------------------------------


def _run_row(channel: str, bill_date: date, moment: datetime) -> ReconciliationRun:
    """The day's run row, locked; created when missing (a racing creator wins)."""
    query = select(ReconciliationRun).where(
        ReconciliationRun.channel == channel, ReconciliationRun.bill_date == bill_date
    )
    run = db.session.scalar(query.with_for_update())
    if run is None:
        try:
            with db.session.begin_nested():
                run = ReconciliationRun(channel=channel, bill_date=bill_date, status="pending", created_at=moment)
                db.session.add(run)
        except IntegrityError:
            run = db.session.scalar(query.with_for_update())
            assert run is not None  # the racing transaction created it
    return run


def _observed(finding: Finding) -> dict[str, object]:
    """The columns a run refreshes on a discrepancy it sees again."""
    return dict(
        out_trade_no=finding.out_trade_no, out_refund_no=finding.out_refund_no,
        channel_trade_no=finding.channel_trade_no, attempt_id=finding.attempt_id, refund_id=finding.refund_id,
        ours_amount_fen=finding.ours_amount_fen, theirs_amount_fen=finding.theirs_amount_fen,
        ours_status=finding.ours_status, theirs_state=finding.theirs_state,
        ours_fee_fen=finding.ours_fee_fen, theirs_fee_fen=finding.theirs_fee_fen,
        occurred_at=finding.occurred_at,
    )


def _move_run(run: ReconciliationRun, moment: datetime, event: str, **values: object) -> None:
    """Move the day's run by ``event``. The row is locked (`_run_row`), so the
    compare-and-set cannot lose; if it ever did, the try's transaction must not commit."""
    if not compare_and_set(ReconciliationRun, run.id, "run", run.status, event, tries=run.tries + 1,
                           started_at=run.started_at or moment, **values):
        raise RuntimeError(f"reconciliation run {run.id} changed under its lock")


def record_run(channel: str, bill_date: date, lines_checked: int, findings: Sequence[Finding],
               moment: datetime) -> RunSummary:
    """Store a finished run that read our records at ``moment``: each finding becomes
    (or refreshes) one discrepancy, and the day's earlier ones this run did not find are
    stamped cleared. A resolved one keeps what staff saw when they resolved it; only its
    ``last_seen_at`` moves, unless the run reopens it (`_seen_again`)."""
    run = _run_row(channel, bill_date, moment)
    earlier = {
        (row.kind, row.subject, row.reference): row
        for row in db.session.scalars(
            select(Discrepancy).where(Discrepancy.channel == channel, Discrepancy.bill_date == bill_date)
        )
    }
    found_ids, new, reopened = [], 0, 0
    for finding in findings:
        row = earlier.pop(finding.key, None)
        if row is None:
            row = Discrepancy(channel=channel, bill_date=bill_date, kind=finding.kind.value,
                              subject=finding.subject, reference=finding.reference[:64], status="open",
                              found_at=moment, last_seen_at=moment, **_observed(finding))
            db.session.add(row)
            new += 1
        else:
            reopened += _seen_again(row, finding, moment)
        db.session.flush()
        found_ids.append(row.id)
    cleared = 0
    for row in earlier.values():
        if row.cleared_at is None:
            row.cleared_at = moment
            cleared += 1
    run_id = run.id
    _move_run(run, moment, "finish", lines_checked=lines_checked, discrepancies_found=len(found_ids),
                error=None, next_try_at=None, finished_at=moment)
    db.session.flush()
    return RunSummary(run_id, lines_checked, tuple(found_ids), new, cleared, reopened)


def _seen_again(row: Discrepancy, finding: Finding, moment: datetime) -> bool:
    """Refresh a discrepancy a run finds again; True when that reopens it.

    An open one takes what the run sees. A resolved one, found in our records as they
    were at or after its resolution, is reopened (the resolution goes to the audit log,
    with the system as the actor), so the dashboard counts it again: staff said it was
    dealt with, yet the difference is still there. Except a difference staff accepted as
    explained, seen exactly as they saw it: finding it again is what they expected.
    """
    observed = _observed(finding)
    seen = dict(last_seen_at=moment, cleared_at=None)
    if row.status == "open":
        for name, value in {**observed, **seen}.items():
            setattr(row, name, value)
        return False
    unchanged = all(getattr(row, name) == value for name, value in observed.items())
    if (row.resolved_at is None or row.resolved_at > moment
            or (row.resolution == "accepted" and unchanged)):
        for name, value in seen.items():
            setattr(row, name, value)
        return False
    before = {**_snapshot(row), "note": row.note, "resolved_by": row.resolved_by, "resolved_at": row.resolved_at}
    row_id, bill_date = row.id, row.bill_date
    db.session.flush()
    if not compare_and_set(Discrepancy, row_id, "discrepancy", "resolved", "reopen", resolution=None, note=None,
                           resolved_by=None, resolved_at=None, **observed, **seen):
        return False  # another run reopened it just now
    record(None, "reconciliation.reopen", "discrepancy", row_id,
           f"found again by the run of {bill_date.isoformat()} after it was resolved", before,
           _snapshot(db.session.get(Discrepancy, row_id)))
    return True


def record_failure(channel: str, bill_date: date, error: str, moment: datetime, retry_after: timedelta) -> int:
    """A try that could not get the bills. A day reconciled before keeps its findings
    and stays finished; otherwise it fails and the periodic round tries again later."""
    run = _run_row(channel, bill_date, moment)
    run_id = run.id
    retry = {} if run.status == "finished" else {"next_try_at": moment + retry_after}
    _move_run(run, moment, "fail", error=error[:255], **retry)
    db.session.flush()
    return run_id


def claim_bill_day(channel: str, bill_date: date, moment: datetime, lease: timedelta) -> bool:
    """Take a day that has no finished run for one try: its next try moves out by
    ``lease``, so later rounds do not queue it again meanwhile, nor lose it if the job
    is lost. False when it is finished, not due, or taken."""
    run = db.session.scalar(select(ReconciliationRun.id).where(
        ReconciliationRun.channel == channel, ReconciliationRun.bill_date == bill_date
    ))
    if run is None:
        try:
            with db.session.begin_nested():
                db.session.add(ReconciliationRun(channel=channel, bill_date=bill_date, status="pending",
                                                 next_try_at=moment + lease, created_at=moment))
        except IntegrityError:
            return False  # another round created it just now, and took it
        return True
    claimed = db.session.execute(
        update(ReconciliationRun)
        .where(ReconciliationRun.id == run, ReconciliationRun.status != "finished",
               or_(ReconciliationRun.next_try_at.is_(None), ReconciliationRun.next_try_at <= moment))
        .values(next_try_at=moment + lease)
        .execution_options(synchronize_session=False)
    ).rowcount
    return claimed == 1


# --- staff ------------------------------------------------------------------------------


def _staff(staff_id: int) -> User:
    user = db.session.get(User, staff_id)
    if user is None or user.role not in RECONCILING_STAFF:
        raise ReconciliationError("forbidden", "Only finance or admin may resolve reconciliation discrepancies.")
    return user


def _snapshot(row: Discrepancy) -> dict[str, object]:
    return {"status": row.status, "kind": row.kind, "reference": row.reference, "resolution": row.resolution,
            "ours_amount_fen": row.ours_amount_fen, "theirs_amount_fen": row.theirs_amount_fen,
            "ours_status": row.ours_status, "theirs_state": row.theirs_state,
            "ours_fee_fen": row.ours_fee_fen, "theirs_fee_fen": row.theirs_fee_fen}


def _open_discrepancy(discrepancy_id: int) -> Discrepancy:
    row = db.session.scalar(select(Discrepancy).where(Discrepancy.id == discrepancy_id).with_for_update())
    if row is None:
        raise ReconciliationError("not_found", "No such discrepancy.")
    if row.status != "open":
        raise ReconciliationError("already_resolved", "This discrepancy is already resolved.")
    return row


def _clean_note(note: str) -> str:
    note = (note or "").strip()
    if not note:
        raise ReconciliationError("note_required", "Please say what was found and done.")
    return note[:255]


def resolve_discrepancy(discrepancy_id: int, staff_id: int, resolution: str, note: str, moment: datetime) -> None:
    """Close an open discrepancy with what was done about it; audited."""
    _staff(staff_id)
    if resolution not in RESOLUTIONS:
        raise ReconciliationError("bad_resolution", "Choose what was done.")
    note = _clean_note(note)
    row = _open_discrepancy(discrepancy_id)
    before = _snapshot(row)
    # Of two people resolving at once, one wins.
    if not compare_and_set(Discrepancy, row.id, "discrepancy", "open", "resolve", resolution=resolution, note=note,
                           resolved_by=staff_id, resolved_at=moment):
        raise ReconciliationError("already_resolved", "This discrepancy is already resolved.")
    db.session.refresh(row)
    record(staff_id, "reconciliation.resolve", "discrepancy", row.id, note, before, _snapshot(row))


@dataclass(frozen=True)
class ChannelQuestion:
    """What to ask the channel about, once the caller has committed."""

    attempt_id: int | None = None
    refund_id: int | None = None


def channel_question(row: Discrepancy, attempt_status: str | None, refund_status: str | None) -> ChannelQuestion | None:
    """What asking the channel can settle for this discrepancy, if anything: a payment
    the bill has as paid while our attempt is not succeeded, or a refund it has as
    succeeded while ours is still processing (a failed refund is retried on its page)."""
    if row.theirs_state != "succeeded":
        return None
    if row.subject == PAYMENT and row.attempt_id is not None and attempt_status in ("created", "closed", "failed"):
        return ChannelQuestion(attempt_id=row.attempt_id)
    if row.subject == REFUND and row.refund_id is not None and refund_status == "processing":
        return ChannelQuestion(refund_id=row.refund_id)
    return None


def current_question(row: Discrepancy) -> ChannelQuestion | None:
    attempt = db.session.get(PaymentAttempt, row.attempt_id) if row.attempt_id is not None else None
    refund = db.session.get(Refund, row.refund_id) if row.refund_id is not None else None
    return channel_question(row, attempt.status if attempt else None, refund.status if refund else None)


def ask_channel(discrepancy_id: int, staff_id: int, note: str, moment: datetime) -> ChannelQuestion:
    """Record that staff asked the channel about an open discrepancy; the caller
    commits, then enqueues the question. The discrepancy stays open until resolved;
    the answer lands on it (`record_check_outcome`), if the job runs at all."""
    _staff(staff_id)
    note = _clean_note(note)
    row = _open_discrepancy(discrepancy_id)
    question = current_question(row)
    if question is None:
        raise ReconciliationError(
            "nothing_to_ask", "Asking the channel settles only a payment or refund the bill has as succeeded "
                              "while ours is not; resolve this one with a note.")
    record(staff_id, "reconciliation.ask_channel", "discrepancy", row.id, note, _snapshot(row),
           {"attempt_id": question.attempt_id, "refund_id": question.refund_id})
    row.asked_at = moment
    db.session.flush()
    return question


def record_check_outcome(attempt_id: int, outcome: str, moment: datetime) -> int:
    """Write what asking the channel about an attempt came to on the open payment
    discrepancies of that attempt, where staff look. Returns how many."""
    return db.session.execute(
        update(Discrepancy)
        .where(Discrepancy.attempt_id == attempt_id, Discrepancy.subject == PAYMENT, Discrepancy.status == "open")
        .values(last_check_outcome=outcome[:255], last_checked_at=moment)
        .execution_options(synchronize_session=False)
    ).rowcount


def unknown_refund_of(channel: str, out_trade_no: str) -> int | None:
    """A discrepancy (any status) saying the channel's bill has a refund of this trade
    we have no record of, e.g. one made in the merchant portal: its id, or None."""
    return db.session.scalar(
        select(func.min(Discrepancy.id)).where(
            Discrepancy.channel == channel, Discrepancy.out_trade_no == out_trade_no,
            Discrepancy.subject == REFUND, Discrepancy.kind == DiscrepancyKind.MISSING_OURS.value,
        )
    )
