"""Service-level steps of the earnings tests: sell, refund, release, pay out, as the
jobs and back office would, without the browser round trips the other suites cover."""
from __future__ import annotations

from typing import Sequence

from sqlalchemy import select

from app.catalog.models import Course, Instructor, Lesson
from app.checkout.services import OrderRequest, place_order
from app.earnings.rules import add_rule, set_authors
from app.extensions import db
from app.ledger import accounts
from app.ledger.services import balance
from app.payments import refund_workflow
from app.payments.channels.base import RefundResult, RefundState
from app.payments.models import PaymentAttempt, Refund
from app.payments.refunds import apply_refund_result, start_refund
from app.payments.settlement import settle_payment


def make_instructor(name: str, rate_bps: int = 7000, user_id: int | None = None) -> int:
    instructor = Instructor(name=name, user_id=user_id)
    db.session.add(instructor)
    db.session.flush()
    add_rule(rate_bps, None, None, "test", instructor_id=instructor.id)
    db.session.commit()
    return instructor.id


def make_course_of(instructor_id: int, price_fen: int, slug: str, authors: Sequence[tuple[int, int]] = ()) -> int:
    course = Course(slug=slug, instructor_id=instructor_id, title_zh=f"课程 {slug}", title_en=f"Course {slug}",
                    price_fen=price_fen)
    course.lessons.append(Lesson(position=1, title_zh="第一课", title_en="One"))
    db.session.add(course)
    db.session.flush()
    if authors:
        set_authors(course.id, list(authors), None, "co-authored course")
    db.session.commit()
    return course.id


def sell(user_id: int, course_ids: Sequence[int], coupon: str | None = None, channel: str = "alipay") -> int:
    """Place and pay an order as the channel's callback would; returns the order id."""
    order_id = place_order(OrderRequest(user_id, tuple(course_ids), coupon, channel))
    db.session.commit()
    attempt = db.session.scalar(select(PaymentAttempt).where(PaymentAttempt.order_id == order_id))
    outcome = settle_payment(attempt.id, f"T{attempt.id:08d}", attempt.amount_fen, None)
    assert outcome.outcome == "paid", outcome
    db.session.commit()
    return order_id


def refund_lines(order_id: int, user_id: int, line_ids: Sequence[int] | None, approvers: Sequence[int]) -> int:
    """Request, approve (two people if large) and complete a refund; returns its id."""
    refund_id = refund_workflow.request_refund(order_id, user_id, line_ids, "changed my mind")
    db.session.commit()
    for approver in approvers:
        if refund_workflow.approve_refund(refund_id, approver, "ok") == "approved":
            break
    db.session.commit()
    request = start_refund(refund_id)
    assert request is not None
    refund = db.session.get(Refund, refund_id)
    apply_refund_result(refund_id, RefundResult(refund.refund_no, RefundState.SUCCEEDED, refund.amount_fen,
                                                f"R{refund_id:06d}"))
    db.session.commit()
    return refund_id


def owed(instructor_id: int) -> tuple[int, int]:
    """(pending, available) the platform owes the instructor, from the ledger."""
    return (-balance(accounts.instructor_pending(instructor_id)),
            -balance(accounts.instructor_available(instructor_id)))
