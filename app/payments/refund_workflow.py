"""Customer refunds: the policy, the learner's request, staff decisions, and what a
refund that went through does to the order, the ledger and the learner's access.

Services: they flush, never commit, and write the audit log in the same transaction as
the decision. The boundary (a view or an admin action) commits and then enqueues
`execute_refund` for an approved refund.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from flask import current_app
from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.accounts.models import User
from app.audit.services import record
from app.catalog.models import Enrollment, Lesson, LessonView
from app.checkout.models import Order, OrderLine, channel_due_fen
from app.errors import ServiceError
from app import followups
from app.extensions import db
from app.i18n import in_reader_language
from app.ledger.fees import refund_fee
from app.ledger.services import post_refund
from app.payments.models import OrphanPayment, PaymentAttempt, Refund, RefundLine, refund_channel_fen
from app.payments.transitions import compare_and_set
from app.renewal.services import renewed_course_ids, renewed_from, take_back
from app.timeutil import now
from app.wallet.refunds import wallet_parts

REFUNDABLE_ORDER_STATUSES = ("paid", "partially_refunded")
# Refunds whose money is spoken for: approved, on its way, gone, or failed and retryable.
COMMITTED_STATUSES = ("approved", "processing", "succeeded", "failed")
FIRST_APPROVERS = frozenset({"support", "finance", "admin"})
SECOND_APPROVERS = frozenset({"finance", "admin"})
MAX_REASON = 255


class RefundError(ServiceError):
    """A refund step that cannot be taken; ``message`` is for the person who tried. The
    learner's are translated (`ServiceError`); staff decisions are the back office's, in
    English."""


@dataclass(frozen=True)
class RefundableLine:
    order_line_id: int
    course_id: int
    title: str  # as sold, in Chinese
    title_en: str
    amount_fen: int
    refundable: bool  # not already refunded or being refunded
    lessons_opened: int
    lessons_total: int


@dataclass(frozen=True)
class RefundPolicy:
    refundable: bool
    problem: LazyString | None  # why not, for the learner (translated when read)
    window_ends_at: datetime | None
    lines: tuple[RefundableLine, ...]


def _clean_reason(reason: str) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise RefundError("reason_required", _l("Please give a reason."))
    return text[:MAX_REASON]


def paying_attempt(order_id: int) -> PaymentAttempt | None:
    """The attempt whose money the order kept (not an orphan that was refunded or held)."""
    orphans = select(OrphanPayment.attempt_id).where(OrphanPayment.resolution != "fulfilled")
    return db.session.scalar(
        select(PaymentAttempt).where(
            PaymentAttempt.order_id == order_id,
            PaymentAttempt.status == "succeeded",
            PaymentAttempt.id.not_in(orphans),
        )
    )


def _lines_in(refund_ids_query: object) -> set[int]:
    return set(
        db.session.scalars(select(RefundLine.order_line_id).where(RefundLine.refund_id.in_(refund_ids_query)))
    )


def _lines_under(order_id: int, statuses: Sequence[str], excluding: int | None = None) -> set[int]:
    refunds = select(Refund.id).where(
        Refund.order_id == order_id, Refund.kind == "customer", Refund.status.in_(statuses)
    )
    if excluding is not None:
        refunds = refunds.where(Refund.id != excluding)
    return _lines_in(refunds)


def refund_policy(order_id: int) -> RefundPolicy:
    """What of this order can be refunded now, and the consumption staff weigh."""
    order = db.session.get(Order, order_id)
    if order is None:
        return RefundPolicy(False, _l("No such order."), None, ())
    window_ends_at = None
    problem = None
    if order.kind == "topup":
        problem = _l("A top-up stays in your balance; it is not refunded here.")
    elif order.kind == "membership":
        problem = _l("A membership is not refundable.")
    elif order.status not in REFUNDABLE_ORDER_STATUSES or order.paid_at is None:
        problem = _l("Only a paid order can be refunded.")
    else:
        window_ends_at = order.paid_at + timedelta(days=current_app.config["REFUND_WINDOW_DAYS"])
        if now() >= window_ends_at:
            problem = _l("The refund window of this order has closed.")
    taken = _lines_under(order.id, COMMITTED_STATUSES)
    lines = tuple(
        RefundableLine(
            order_line_id=line.id,
            course_id=line.course_id,
            title=line.title,
            title_en=line.course.title_en,
            amount_fen=line.amount_fen,
            refundable=line.id not in taken,
            lessons_opened=_lessons_opened(order.user_id, line.course_id, renewed_from(line.id)
                                           if line.kind == "renewal" else None),
            lessons_total=_lessons_total(line.course_id),
        )
        for line in order.lines
    )
    if problem is None and not any(line.refundable for line in lines):
        problem = _l("Everything in this order has been refunded or is being refunded.")
    return RefundPolicy(problem is None, problem, window_ends_at, lines)


def _lessons_opened(user_id: int, course_id: int, since: datetime | None = None) -> int:
    """Distinct lessons the learner opened; for a renewal, only in the days it bought."""
    opened = select(func.count(func.distinct(LessonView.lesson_id))).where(
        LessonView.user_id == user_id, LessonView.course_id == course_id
    )
    if since is not None:
        opened = opened.where(LessonView.opened_at >= since)
    return db.session.scalar(opened) or 0


def _lessons_total(course_id: int) -> int:
    return db.session.scalar(select(func.count(Lesson.id)).where(Lesson.course_id == course_id)) or 0


def _refuse_purchase_with_renewals(order: Order, line_ids: set[int]) -> None:
    """Refunding a purchase ends the learner's access, and with it the days renewals of
    it added, which were paid for: those are refunded first, each on its own order."""
    purchases = [line for line in order.lines if line.id in line_ids and line.kind == "purchase"]
    renewed = renewed_course_ids(order.user_id, [line.course_id for line in purchases])
    if renewed:
        titles = [line for line in purchases if line.course_id in renewed]
        raise RefundError("renewals_first", _l(
            "%(titles)s has been renewed: refunding it would end the renewed days too. "
            "Refund the renewal orders first.",
            titles=in_reader_language("、".join(line.title for line in titles),
                                      ", ".join(line.course.title_en for line in titles))))


def request_refund(order_id: int, user_id: int, line_ids: Sequence[int] | None, reason: str) -> int:
    """The learner asks for the whole order (``line_ids`` None) or chosen lines back."""
    text = _clean_reason(reason)
    order = _locked_order(order_id)
    if order is None or order.user_id != user_id:
        raise RefundError("order_not_found", _l("No such order."))
    policy = refund_policy(order.id)
    if not policy.refundable:
        raise RefundError("not_refundable", policy.problem if policy.problem is not None
                          else _l("This order cannot be refunded."))
    refundable = {line.order_line_id: line for line in policy.lines if line.refundable}
    wanted = set(refundable) if not line_ids else set(line_ids)
    if not wanted or not wanted <= set(refundable):
        raise RefundError("lines_not_refundable", _l("Choose courses of this order that can be refunded."))
    _refuse_purchase_with_renewals(order, wanted)
    attempt = paying_attempt(order.id)
    if attempt is not None:
        sequence = (db.session.scalar(select(func.count(Refund.id)).where(Refund.attempt_id == attempt.id)) or 0) + 1
        refund_no = f"{attempt.out_trade_no}R{sequence:02d}"
    elif channel_due_fen(order) == 0:
        # Paid by balance alone: the refund goes back to the balance, under the order's number.
        sequence = (db.session.scalar(select(func.count(Refund.id)).where(Refund.order_id == order.id)) or 0) + 1
        refund_no = f"{order.order_no}W{sequence:02d}"
    else:
        raise RefundError("no_payment", _l("No payment of this order can be refunded."))
    refund = Refund(
        refund_no=refund_no,
        order_id=order.id,
        attempt_id=attempt.id if attempt is not None else None,
        kind="customer",
        amount_fen=sum(refundable[line_id].amount_fen for line_id in wanted),
        reason=text,
        status="requested",
        requested_by=user_id,
        created_at=now(),
    )
    refund.lines = [
        RefundLine(order_line_id=line_id, amount_fen=refundable[line_id].amount_fen)
        for line_id in sorted(wanted)
    ]
    db.session.add(refund)
    db.session.flush()
    followups.refund_requested(refund.id)
    return refund.id


def _locked_order(order_id: int) -> Order | None:
    """The order, row-locked: refund decisions on one order are serialised."""
    return db.session.scalar(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    )


def _staff(staff_id: int, allowed: frozenset[str], what: str) -> User:
    user = db.session.get(User, staff_id)
    if user is None or user.role not in allowed:
        raise RefundError("forbidden", f"Your role may not {what}.")
    return user


def _snapshot(refund: Refund) -> dict[str, object]:
    return {"status": refund.status, "amount_fen": refund.amount_fen, "refund_no": refund.refund_no}


def approve_refund(refund_id: int, staff_id: int, reason: str) -> str:
    """Approve a requested refund; returns its new status.

    A refund above LARGE_REFUND_FEN first goes to ``awaiting_finance``; finance (or an
    admin) who is not the first approver then approves it. Under the order's row lock,
    an approval that would refund a line twice, or more than was paid, is refused.
    """
    text = _clean_reason(reason)
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.kind != "customer":
        raise RefundError("refund_not_found", "No such refund request.")
    order = _locked_order(refund.order_id)
    db.session.refresh(refund)
    before = _snapshot(refund)
    if refund.requested_by == staff_id:
        raise RefundError("own_request", "Nobody may approve a refund they asked for themselves.")
    if refund.status == "requested":
        _staff(staff_id, FIRST_APPROVERS, "approve refunds")
        # Judged on the order, not the request: splitting a large refund into small
        # ones must not dodge the second approver.
        large = _committed_fen(refund.order_id, refund.id) + refund.amount_fen > current_app.config[
            "LARGE_REFUND_FEN"
        ]
        event = "approve_first" if large else "approve"
    elif refund.status == "awaiting_finance":
        _staff(staff_id, SECOND_APPROVERS, "give the second approval of a large refund")
        if refund.first_approved_by == staff_id:
            raise RefundError("same_approver", "A large refund needs a second approver: someone else must approve it.")
        event = "approve"
    else:
        raise RefundError("not_pending", f"This refund is {refund.status}, not waiting for approval.")
    _check_fits(order, refund)
    values: dict[str, object] = {"decided_at": now()}
    if event == "approve_first":
        values["first_approved_by"] = staff_id
    else:
        # Fixed now, under the order's lock, with the refunds approved before it.
        paid_fen, bonus_fen = wallet_parts(order, refund)
        values.update(decided_by=staff_id, decision_reason=text, next_check_at=now(),
                      wallet_paid_fen=paid_fen, wallet_bonus_fen=bonus_fen)
    if not compare_and_set(Refund, refund.id, "refund", refund.status, event, **values):
        raise RefundError("changed", "This refund changed meanwhile; reload and try again.")
    db.session.refresh(refund)
    record(staff_id, f"refund.{event}", "refund", refund.id, text, before, _snapshot(refund))
    return refund.status


def _check_fits(order: Order | None, refund: Refund) -> None:
    if order is None or order.status not in REFUNDABLE_ORDER_STATUSES:
        raise RefundError("not_refundable", "The order is not in a refundable state.")
    own_lines = {line.order_line_id for line in refund.lines}
    if _lines_under(order.id, COMMITTED_STATUSES, excluding=refund.id) & own_lines:
        raise RefundError("line_refunded", "A course of this request has already been refunded.")
    if _committed_fen(order.id, refund.id) + refund.amount_fen > order.total_fen:
        raise RefundError("over_refund", "This refund would return more than was paid.")


def _committed_fen(order_id: int, excluding: int) -> int:
    """What the order's other customer refunds already give back, or will."""
    return db.session.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
            Refund.order_id == order_id,
            Refund.kind == "customer",
            Refund.status.in_(COMMITTED_STATUSES),
            Refund.id != excluding,
        )
    )


def reject_refund(refund_id: int, staff_id: int, reason: str) -> None:
    text = _clean_reason(reason)
    _staff(staff_id, FIRST_APPROVERS, "reject refunds")
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.kind != "customer":
        raise RefundError("refund_not_found", "No such refund request.")
    before = _snapshot(refund)
    if refund.status not in ("requested", "awaiting_finance") or not compare_and_set(
        Refund, refund.id, "refund", refund.status, "reject",
        decided_by=staff_id, decided_at=now(), decision_reason=text,
    ):
        raise RefundError("not_pending", "This refund is not waiting for a decision.")
    db.session.refresh(refund)
    record(staff_id, "refund.reject", "refund", refund.id, text, before, _snapshot(refund))
    followups.refund_rejected(refund.id)


def retry_refund(refund_id: int, staff_id: int, reason: str) -> None:
    """Send a failed refund again, under its same number; the boundary enqueues it."""
    text = _clean_reason(reason)
    _staff(staff_id, FIRST_APPROVERS, "retry refunds")
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status != "failed":
        raise RefundError("not_failed", "Only a failed refund can be retried.")
    before = _snapshot(refund)
    if not compare_and_set(
        Refund, refund.id, "refund", "failed", "retry", next_check_at=now(), last_error=None
    ):
        raise RefundError("changed", "This refund changed meanwhile; reload and try again.")
    db.session.refresh(refund)
    record(staff_id, "refund.retry", "refund", refund.id, text, before, _snapshot(refund))


def complete_customer_refund(refund: Refund) -> None:
    """The money went back: reverse the refunded lines in the ledger, move the order,
    and revoke access to courses the learner no longer holds through a paid order."""
    order = _locked_order(refund.order_id)
    assert order is not None
    line_ids = {line.order_line_id for line in refund.lines}
    lines = [line for line in order.lines if line.id in line_ids]
    channel = refund.attempt.channel if refund.attempt is not None else None
    post_refund(order, lines, channel, refund.id, book_returned_fee(refund),
                refund.wallet_paid_fen, refund.wallet_bonus_fen)
    refunded = db.session.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
            Refund.order_id == order.id, Refund.kind == "customer", Refund.status == "succeeded"
        )
    )
    event = "refund_rest" if refunded >= order.total_fen else "refund_part"
    compare_and_set(Order, order.id, "order", order.status, event)
    for line in lines:
        if line.kind == "renewal":
            take_back(line.id)  # only the days it added; the enrollment stays
        else:
            _revoke_unless_held_elsewhere(order.user_id, line.course_id, order.id)
    to_balance = refund.wallet_paid_fen + refund.wallet_bonus_fen
    how = ("the money went back to the prepaid balance" if to_balance == refund.amount_fen
           else "the channel returned the money" if not to_balance
           else "the channel returned its part and the balance got the rest")
    record(None, "refund.succeeded", "refund", refund.id, how, None,
           {"amount_fen": refund.amount_fen, "to_balance_fen": to_balance,
            "order_status": db.session.get(Order, order.id).status})
    followups.refund_succeeded(refund.id)


def book_returned_fee(refund: Refund) -> int:
    """Fix on the refund the part of its payment's fee the channel gave back.

    Runs under the order's lock (or for the only refund of an orphan payment), so the
    running total it reads cannot move meanwhile.
    """
    attempt = refund.attempt
    if attempt is None:  # paid by balance alone: no channel, no fee
        refund.fee_fen = 0
        db.session.flush()
        return 0
    # Only what went back through the channel counts; a balance part had no fee.
    refunded_before = db.session.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen - Refund.wallet_paid_fen - Refund.wallet_bonus_fen), 0))
        .where(Refund.attempt_id == refund.attempt_id, Refund.status == "succeeded", Refund.id != refund.id)
    )
    refund.fee_fen = refund_fee(attempt.fee_fen or 0, attempt.amount_fen, refunded_before,
                                refund_channel_fen(refund))
    db.session.flush()
    return refund.fee_fen


def _revoke_unless_held_elsewhere(user_id: int, course_id: int, refunded_order_id: int) -> None:
    refunded_lines = (
        select(RefundLine.order_line_id)
        .join(Refund, Refund.id == RefundLine.refund_id)
        .where(Refund.status == "succeeded")
    )
    other = db.session.scalar(
        select(OrderLine.order_id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(
            Order.user_id == user_id,
            Order.id != refunded_order_id,
            Order.status.in_(REFUNDABLE_ORDER_STATUSES),
            OrderLine.course_id == course_id,
            OrderLine.kind == "purchase",  # a renewal alone does not hold a course
            OrderLine.id.not_in(refunded_lines),
        )
        .limit(1)
    )
    enrollment = db.session.scalar(
        select(Enrollment).where(Enrollment.user_id == user_id, Enrollment.course_id == course_id)
    )
    if enrollment is None or enrollment.revoked_at is not None:
        return
    if other is not None:
        enrollment.order_id = other
    else:
        enrollment.revoked_at = now()
        followups.enrollment_revoked(user_id, course_id, refunded_order_id)
    db.session.flush()


def refunds_by_order(order_ids: Sequence[int]) -> dict[int, list[Refund]]:
    """The refunds of these orders, oldest first, for the learner's list: the ones they
    asked for, and the system refunds of money that arrived twice (told, not hidden)."""
    found: dict[int, list[Refund]] = {order_id: [] for order_id in order_ids}
    if not order_ids:
        return found
    for refund in db.session.scalars(
        select(Refund)
        .where(Refund.order_id.in_(order_ids))
        .order_by(Refund.id)
    ):
        found[refund.order_id].append(refund)
    return found
