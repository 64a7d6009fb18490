"""What a channel's word does to our books: an attempt paid, closed or still pending.

One entry point per money movement; each flushes and never commits, so the caller's
transaction holds the whole movement (DESIGN.md §3). Every status moves by
compare-and-set, so racing callbacks, queries and expiry runs settle a payment once.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Row, bindparam, func, insert, select, update
from sqlalchemy.orm import joinedload

from app.cart import coupons
from app.catalog.models import Course, Enrollment
from app.checkout.models import Order, OrderLine
from app import followups
from app.extensions import db
from app.ledger.fees import payment_fee
from app.ledger.services import post_sale, post_unallocated_receipt
from app.membership.services import start_membership
from app.payments.channels.base import TradeState, TradeStatus
from app.payments.models import OrphanPayment, PaymentAttempt
from app.payments.refunds import open_system_refund
from app.payments.transitions import compare_and_set
from app.renewal.services import access_end, end_earlier_extensions, extend_for_order, lapsed_renewal
from app.timeutil import from_aware, now
from app.wallet.holds import post_topup, release_hold

log = logging.getLogger(__name__)

# Active query: the first question a minute after the QR was issued, then these gaps,
# then every minute until the attempt is settled or closed.
FIRST_QUERY_AFTER = timedelta(minutes=1)
QUERY_BACKOFF = (timedelta(seconds=10), timedelta(seconds=15), timedelta(seconds=30))
QUERY_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Settlement:
    """The outcome in words (for logs and the inbox row), and a refund to run, if any;
    for a processed notification, also its channel (for the metrics)."""

    outcome: str
    refund_id: int | None = None
    channel: str | None = None


def next_query_delay(queries_made: int) -> timedelta:
    if queries_made < len(QUERY_BACKOFF):
        return QUERY_BACKOFF[queries_made]
    return QUERY_EVERY


def settle_payment(
    attempt_id: int, channel_trade_no: str, amount_fen: int, paid_at: datetime | None,
    opened_at: datetime | None = None,
) -> Settlement:
    """The channel says this attempt is paid: book it exactly once.

    The attempt's compare-and-set decides the single winner among racing deliveries; the
    loser returns without touching anything. Money the order cannot keep becomes an
    orphan payment with a system refund.

    The same compare-and-set stamps the payment's timeline (app/analytics): the
    channel's opening time when it told us one (``opened_at``, naive UTC), and
    ``booked_at``, our clock in this transaction, which posts the ledger entry and grants
    the courses; nothing of the booking commits without it.
    """
    attempt = db.session.get(PaymentAttempt, attempt_id)
    if attempt is None:
        return Settlement("no such attempt")
    if amount_fen != attempt.amount_fen:
        return Settlement("amount does not match the attempt")
    if attempt.status == "succeeded":
        return Settlement("duplicate: attempt already succeeded")
    moment = paid_at or now()
    # The fee is fixed with the payment, so a later change of rate never alters what a
    # refund of it gives back.
    fee_fen = payment_fee(attempt.channel, attempt.amount_fen)
    # Read now: the compare-and-set expires the loaded attempt, and reading it again
    # would cost a query.
    order_id, channel = attempt.order_id, attempt.channel
    won = compare_and_set(
        PaymentAttempt, attempt.id, "attempt", attempt.status, "succeed",
        channel_trade_no=channel_trade_no or None, succeeded_at=moment, next_query_at=None,
        fee_fen=fee_fen, channel_opened_at=opened_at, booked_at=now(),
    )
    if not won:
        return Settlement("duplicate: attempt settled concurrently")

    # Read once, before the order moves: whether the learner owns a course already, and
    # which enrollments booking grants. A racing grant of the same course by another
    # order's job still fails this job on the unique (user, course) key, and its retry
    # then finds the course owned.
    enrollments, lapsed = _learner_enrollments(order_id)
    owned = _owned_elsewhere(order_id, enrollments)
    if not owned and not lapsed and compare_and_set(Order, order_id, "order", "pending", "pay", paid_at=moment):
        _fulfil(_order_to_book(order_id), channel, attempt_id, fee_fen, enrollments)
        return Settlement("paid")
    order = _order_to_book(order_id)
    if owned:
        reason = "the learner already owns a course of the order through another order"
    elif lapsed:
        reason = lapsed
    elif order.status == "closed":
        refusal = _no_longer_sold(order)
        if refusal is None and compare_and_set(
            Order, order_id, "order", "closed", "pay_late", paid_at=moment
        ):
            coupons.reclaim(order_id)
            _fulfil(_order_to_book(order_id), channel, attempt_id, fee_fen, enrollments)
            _record_orphan(attempt, "paid after the order had closed", "fulfilled")
            return Settlement("paid (late, after the order closed)")
        reason = f"paid after the order had closed, and {refusal or 'the order changed meanwhile'}"
    else:
        reason = "the order was already paid by another attempt"
    # The money is ours to give back: book it as unallocated, then refund it in full.
    post_unallocated_receipt(order, channel, attempt_id, attempt.amount_fen, fee_fen)
    refund_id = open_system_refund(attempt, reason)
    _record_orphan(attempt, reason, "refunded", refund_id)
    log.warning("orphan payment on attempt %s (order %s): %s", attempt_id, order.order_no, reason)
    return Settlement(f"orphan payment, refunding: {reason}", refund_id)


# The learner's enrollments in the courses of an order (granted by any order), with the
# order's status. Built once, at import: it runs in every payment's job, and building
# the statement costs more than running it.
# Each line of the order with the learner's enrollment in its course, if any: one query
# answers both "owned already?" (purchase lines) and "still held?" (renewal lines).
_LINE_HOLDINGS = select(
    OrderLine.kind.label("line_kind"), Enrollment.course_id, Enrollment.order_id, Enrollment.revoked_at,
    Enrollment.expires_at, Order.status.label("order_status"),
).select_from(OrderLine).join(Order, Order.id == OrderLine.order_id).outerjoin(
    Enrollment, (Enrollment.course_id == OrderLine.course_id) & (Enrollment.user_id == Order.user_id)
).where(Order.id == bindparam("order_id"))


def _order_to_book(order_id: int) -> Order:
    """The order as it stands now, with what booking it reads (its lines and their
    shares) in the same query. Read afresh: a compare-and-set may just have moved it."""
    return db.session.get(
        Order, order_id,
        options=[joinedload(Order.lines).joinedload(OrderLine.shares)],
        populate_existing=True,
    )


def _learner_enrollments(order_id: int) -> tuple[list[Row], str | None]:
    """The learner's enrollments in the courses the order sells (a renewal line is for a
    course the learner holds: not a second sale of it), and why a renewal of the order
    can no longer extend anything, or None."""
    holdings = list(db.session.execute(_LINE_HOLDINGS, {"order_id": order_id}))
    purchased = [row for row in holdings if row.line_kind == "purchase" and row.course_id is not None]
    return purchased, lapsed_renewal(holdings)


def _owned_elsewhere(order_id: int, enrollments: list[Row]) -> bool:
    """Whether the learner owns a course of this order through another order: paying
    this one would sell them a course twice. Only a pending or closed order can be
    paid by this payment; for any other the question does not arise."""
    return any(
        enrollment.order_status in ("pending", "closed")
        and enrollment.revoked_at is None
        and enrollment.order_id != order_id  # one granted without an order counts too
        for enrollment in enrollments
    )


def _no_longer_sold(order: Order) -> str | None:
    """Why a closed order cannot be fulfilled late, or None when it can."""
    if order.wallet_paid_fen or order.wallet_bonus_fen:
        # Closing gave the held balance back, and the learner may have spent it since.
        return "its balance part went back to the balance when it closed"
    course_ids = {line.course_id for line in order.lines}
    published = db.session.scalar(
        select(func.count(Course.id)).where(Course.id.in_(course_ids), Course.is_published)
    )
    if published != len(course_ids):
        return "a course of it is no longer sold"
    return None


def _record_orphan(
    attempt: PaymentAttempt,
    reason: str,
    resolution: str,
    refund_id: int | None = None,
    amount_fen: int | None = None,
) -> None:
    db.session.add(
        OrphanPayment(
            attempt_id=attempt.id,
            order_id=attempt.order_id,
            amount_fen=amount_fen or attempt.amount_fen,
            reason=reason[:255],
            resolution=resolution,
            refund_id=refund_id,
            created_at=now(),
        )
    )
    db.session.flush()


def _fulfil(
    order: Order, channel: str, attempt_id: int, fee_fen: int, enrollments: list[Row]
) -> None:
    if order.kind == "topup":
        post_topup(order, channel, attempt_id, fee_fen)  # credits the balance; no course
    elif order.kind == "membership":
        start_membership(order, channel, attempt_id, fee_fen)  # opens every course for its period
    else:
        post_sale(order, channel, attempt_id, fee_fen)
        grant_enrollments(order, enrollments)
        extend_for_order(order, order.paid_at or now())
    followups.order_paid(order.id)


def grant_enrollments(order: Order, enrollments: list[Row]) -> None:
    """Enrol the learner in every course of the order: a new enrollment, or one revoked
    (by a refund) given back; one the learner holds already is left as it is.
    ``enrollments`` are the learner's in these courses (`_learner_enrollments`)."""
    purchases = [line for line in order.lines if line.kind == "purchase"]
    course_ids = [line.course_id for line in purchases]
    # A time-limited course is open until paid time + its days (snapshotted on the line).
    moment = order.paid_at or now()
    ends = {line.course_id: access_end(moment, line.access_days) for line in purchases}
    # Rows, not objects, and no statement per line: this runs in every payment's job.
    revoked_at_by_course = {enrollment.course_id: enrollment.revoked_at for enrollment in enrollments}
    new = [course_id for course_id in course_ids if course_id not in revoked_at_by_course]
    revoked = [course_id for course_id, revoked_at in revoked_at_by_course.items() if revoked_at]
    if new:
        db.session.execute(insert(Enrollment), [
            {"user_id": order.user_id, "course_id": course_id, "order_id": order.id,
             "granted_at": now(), "expires_at": ends[course_id]}
            for course_id in new
        ])
    if revoked:
        end_earlier_extensions(order.user_id, revoked)
    for course_id in revoked:  # a few at most: given back after a refund
        db.session.execute(
            update(Enrollment)
            .where(Enrollment.user_id == order.user_id, Enrollment.course_id == course_id)
            .values(revoked_at=None, order_id=order.id, expires_at=ends[course_id],
                    reminded_for_expiry=None)
            .execution_options(synchronize_session="fetch")
        )
    for course_id in new + revoked:
        followups.enrollment_granted(order.user_id, course_id, order.id)


def apply_trade_status(attempt_id: int, status: TradeStatus) -> Settlement:
    """Act on what a query (not a callback) told us about an attempt."""
    attempt = db.session.get(PaymentAttempt, attempt_id)
    if attempt is None or attempt.out_trade_no != status.out_trade_no:
        return Settlement("query answer is for another attempt")
    if status.state is TradeState.PAID:
        if status.refunded:
            # Money of a trade we never booked has gone back already (refunded by hand
            # at the channel): booking the sale now would grant a course nobody paid for.
            return hold_for_staff(attempt, "channel reports the trade paid and refunded there",
                                  status.amount_fen)
        if status.amount_fen != attempt.amount_fen:
            return hold_mismatched_payment(attempt, status.amount_fen)
        paid_at = from_aware(status.paid_at) if status.paid_at else None
        return settle_payment(attempt.id, status.channel_trade_no or "", attempt.amount_fen, paid_at)
    if status.state is TradeState.CLOSED:
        close_attempt(attempt.id)
        return Settlement("closed at the channel")
    return Settlement(f"still {status.state.value}")


def hold_mismatched_payment(attempt: PaymentAttempt, reported_fen: int | None) -> Settlement:
    """The channel says paid, for an amount we never asked for: nothing is booked or
    granted on an unexplained amount."""
    reason = f"channel reports {reported_fen} fen paid, the attempt asked {attempt.amount_fen}"
    return hold_for_staff(attempt, reason, reported_fen)


def hold_for_staff(attempt: PaymentAttempt, reason: str, reported_fen: int | None) -> Settlement:
    """A payment the channel reports that we cannot book as it stands. The attempt
    fails (no more queries, so the order can close) and staff get the case, with the
    channel's figure, to settle by hand."""
    log.error("attempt %s: %s", attempt.id, reason)
    if compare_and_set(
        PaymentAttempt, attempt.id, "attempt", "created", "fail",
        last_error=reason[:255], next_query_at=None,
    ):
        _record_orphan(attempt, reason, "held", amount_fen=reported_fen or attempt.amount_fen)
    return Settlement(f"held for staff: {reason}")


def close_attempt(attempt_id: int) -> bool:
    """The channel will not take money for this attempt any more: close it here too."""
    return compare_and_set(
        PaymentAttempt, attempt_id, "attempt", "created", "close",
        closed_at=now(), next_query_at=None,
    )


def schedule_next_query(attempt_id: int) -> None:
    """After a query that left the attempt open: the next one on the backoff schedule."""
    attempt = db.session.get(PaymentAttempt, attempt_id)
    if attempt is None or attempt.status != "created":
        return
    attempt.next_query_at = now() + next_query_delay(attempt.queries)
    attempt.queries += 1
    db.session.flush()


def live_attempt_ids(order_id: int) -> list[int]:
    """Attempts of the order that the channel may still take money for."""
    return list(
        db.session.scalars(
            select(PaymentAttempt.id).where(
                PaymentAttempt.order_id == order_id, PaymentAttempt.status == "created"
            )
        )
    )


def close_order(order_id: int, event: str = "expire") -> bool:
    """Close a pending order whose attempts are all closed; its coupon use and any balance
    it held are given back.

    False when the order is not pending any more or an attempt may still be paid.
    """
    if live_attempt_ids(order_id):
        return False
    moment = now()
    if not compare_and_set(Order, order_id, "order", "pending", event, closed_at=moment):
        return False
    coupons.release(order_id, moment)
    release_hold(order_id)
    return True
