"""Refunds as money movements: opened, started, completed or failed. Flush, never commit.

A refund is sent to the channel under our own ``refund_no`` (out_refund_no), so sending
it again after an unknown answer returns the first result instead of refunding twice.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from app import followups
from app.extensions import db
from app.ledger.services import post_orphan_refund
from app.payments.channels.base import RefundRequest, RefundResult, RefundState
from app.payments.models import PaymentAttempt, Refund, refund_channel_fen
from app.payments.refund_workflow import book_returned_fee, complete_customer_refund
from app.payments.transitions import compare_and_set
from app.timeutil import from_aware, now

# After an unknown answer or a "processing" one, ask the channel again this much later.
CHECK_AFTER = timedelta(minutes=1)


def open_system_refund(attempt: PaymentAttempt, reason: str) -> int:
    """A full refund of an orphan payment, approved by the system at once."""
    sequence = (
        db.session.scalar(select(func.count(Refund.id)).where(Refund.attempt_id == attempt.id)) or 0
    ) + 1
    refund = Refund(
        refund_no=f"{attempt.out_trade_no}R{sequence:02d}",
        order_id=attempt.order_id,
        attempt_id=attempt.id,
        kind="orphan",
        amount_fen=attempt.amount_fen,
        reason=reason[:255],
        status="approved",
        # The caller enqueues it at once; the periodic round sends it only if that job
        # is lost, so the two do not race.
        next_check_at=now() + CHECK_AFTER,
        created_at=now(),
    )
    db.session.add(refund)
    db.session.flush()
    return refund.id


def start_refund(refund_id: int) -> RefundRequest | None:
    """Move an approved refund to processing, or keep one that is processing; the
    request to send, or None when there is nothing to send. A failed refund is sent
    again only after staff decide so (`retry_refund` moves it back to processing)."""
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status not in ("approved", "processing"):
        return None
    if refund.status == "approved":
        if not compare_and_set(Refund, refund.id, "refund", "approved", "start"):
            return None
    refund = db.session.get(Refund, refund_id)
    assert refund is not None
    if refund_channel_fen(refund) == 0:
        _complete_in_balance(refund)
        return None
    refund.tries += 1
    refund.next_check_at = now() + CHECK_AFTER
    db.session.flush()
    return RefundRequest(
        out_trade_no=refund.attempt.out_trade_no,
        out_refund_no=refund.refund_no,
        amount_fen=refund_channel_fen(refund),
        total_fen=refund.attempt.amount_fen,
        reason=refund.reason,
    )


def apply_refund_result(refund_id: int, result: RefundResult) -> str:
    """Record what the channel said about a refund that is processing."""
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status != "processing":
        return "not processing"
    if result.state is RefundState.PROCESSING:
        refund.next_check_at = now() + CHECK_AFTER
        db.session.flush()
        return "still processing at the channel"
    if result.state is RefundState.FAILED:
        fail_refund(refund.id, "the channel could not return the money")
        return "failed at the channel"
    if result.amount_fen != refund_channel_fen(refund):
        fail_refund(refund.id, f"channel refunded {result.amount_fen} fen, expected {refund_channel_fen(refund)}")
        return "amount mismatch; left for staff"
    moment = from_aware(result.refunded_at) if result.refunded_at else now()
    if not compare_and_set(
        Refund, refund.id, "refund", "processing", "succeed",
        succeeded_at=moment, channel_refund_no=result.channel_refund_no, next_check_at=None,
        last_error=None,
    ):
        return "settled concurrently"
    if refund.kind == "orphan":
        post_orphan_refund(
            refund.order_id, refund.attempt.channel, refund.id, refund.amount_fen,
            book_returned_fee(refund),
        )
    else:
        complete_customer_refund(refund)
    return "succeeded"


def _complete_in_balance(refund: Refund) -> None:
    """A refund that goes back to the prepaid balance only: nothing to send, so it
    succeeds at once, in this transaction (app/wallet)."""
    if compare_and_set(
        Refund, refund.id, "refund", "processing", "succeed",
        succeeded_at=now(), next_check_at=None, last_error=None,
    ):
        complete_customer_refund(db.session.get(Refund, refund.id))


def fail_refund(refund_id: int, error: str) -> bool:
    """The channel refused: staff see it with the reason and may retry it."""
    failed = compare_and_set(
        Refund, refund_id, "refund", "processing", "fail",
        last_error=error[:255], next_check_at=None,
    )
    if failed:
        followups.refund_failed(refund_id)
    return failed


def note_refund_unknown(refund_id: int, error: str) -> None:
    refund = db.session.get(Refund, refund_id)
    if refund is not None and refund.status == "processing":
        refund.last_error = error[:255]
        refund.next_check_at = now() + CHECK_AFTER
        db.session.flush()


def claim_refund(refund_id: int, lease: timedelta = timedelta(minutes=2)) -> bool:
    """Take a due refund for one runner: its next check moves out by ``lease``, so a
    later round neither queues it twice nor loses it if the job is lost. Flushes."""
    moment = now()
    claimed = db.session.execute(
        update(Refund)
        .where(
            Refund.id == refund_id,
            Refund.status.in_(("approved", "processing")),
            Refund.next_check_at <= moment,
        )
        .values(next_check_at=moment + lease)
        .execution_options(synchronize_session=False)
    ).rowcount
    return claimed == 1


def due_refund_ids(moment: datetime, limit: int = 100) -> list[int]:
    """Approved refunds not yet sent, and processing ones due for another look."""
    return list(
        db.session.scalars(
            select(Refund.id)
            .where(
                Refund.status.in_(("approved", "processing")),
                Refund.next_check_at.is_not(None),
                Refund.next_check_at <= moment,
            )
            .order_by(Refund.id)
            .limit(limit)
        )
    )
