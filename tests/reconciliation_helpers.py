"""Steps the reconciliation tests share: real payments and refunds through the
emulator at chosen Beijing times, the edits that inject a discrepancy, and a run."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.extensions import db
from app.gateway import faults
from app.jobs import enqueue
from app.payments import refund_workflow
from app.payments.channels.base import ChargeRequest, RefundRequest, RefundState
from app.payments.models import PaymentAttempt, Refund
from app.payments.notify_urls import notify_url
from app.payments.registry import get_channel
from app.reconciliation.matching import BILL_ZONE
from app.reconciliation.runs import RunOutcome, reconcile_day
from tests.conftest import Clock
from tests.helpers import attempt_of, checkout, make_course, pay_at_emulator

CHANNELS = ["alipay", "wechat"]
D = date(2026, 11, 20)
DAY = timedelta(days=1)


def set_beijing(clock: Clock, day: date, hour: int, minute: int = 0, second: int = 0) -> None:
    moment = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=BILL_ZONE)
    clock.current = moment.astimezone(timezone.utc).replace(tzinfo=None)


def utc_of(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    moment = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=BILL_ZONE)
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def pay(app: Flask, client: FlaskClient, channel: str, price_fen: int = 10000, drop_notify: bool = False,
        settle: bool = True) -> str:
    """The learner on ``client`` buys a new course and (unless ``settle`` is False) pays
    at the emulator; returns the attempt's out_trade_no."""
    with app.app_context():
        course_id = make_course(price_fen, slug=f"c-{uuid.uuid4().hex[:8]}")
    order_no = checkout(client, [course_id], channel=channel)
    with app.app_context():
        attempt = attempt_of(order_no)
        out_trade_no, qr = attempt.out_trade_no, attempt.qr_code
        if drop_notify:
            faults.set_fault("drop_notify", channel, out_trade_no)
            db.session.commit()
    if settle:
        assert qr
        pay_at_emulator(app, qr)
    return out_trade_no


def pay_ghost(app: Flask, clock: Clock, channel: str, amount_fen: int = 8800) -> str:
    """A trade at the channel that we never recorded: created with the adapter directly."""
    out_trade_no = f"GHOST{uuid.uuid4().hex[:12].upper()}"
    with app.app_context():
        intent = get_channel(channel).precreate(ChargeRequest(
            out_trade_no, amount_fen, "not ours",
            (clock.current + timedelta(minutes=15)).replace(tzinfo=timezone.utc), notify_url(channel),
        ))
    pay_at_emulator(app, intent.qr_code)
    return out_trade_no


def refund_at_channel(app: Flask, channel: str, out_trade_no: str, amount_fen: int, total_fen: int) -> str:
    """Staff refund a trade in the channel's merchant portal: the money goes back, and
    our records know nothing of it. Returns the portal's out_refund_no."""
    out_refund_no = f"PORTAL{uuid.uuid4().hex[:10].upper()}"
    with app.app_context():
        result = get_channel(channel).refund(RefundRequest(out_trade_no, out_refund_no, amount_fen, total_fen,
                                                           "refunded in the merchant portal"))
    assert result.state in (RefundState.SUCCEEDED, RefundState.PROCESSING)
    return out_refund_no


def edit_attempt(app: Flask, out_trade_no: str, **values: object) -> None:
    with app.app_context():
        db.session.execute(update(PaymentAttempt).where(PaymentAttempt.out_trade_no == out_trade_no).values(**values))
        db.session.commit()


def attempt_row(app: Flask, out_trade_no: str) -> PaymentAttempt:
    with app.app_context():
        attempt = db.session.scalar(select(PaymentAttempt).where(PaymentAttempt.out_trade_no == out_trade_no))
        db.session.expunge(attempt)
        return attempt


def refund_in_full(app: Flask, out_trade_no: str, support_id: int) -> str:
    """A customer refund of the whole payment, approved and sent; returns its refund_no."""
    with app.app_context():
        attempt = db.session.scalar(select(PaymentAttempt).where(PaymentAttempt.out_trade_no == out_trade_no))
        refund_id = refund_workflow.request_refund(attempt.order_id, attempt.order.user_id, None, "not for me")
        db.session.commit()
        assert refund_workflow.approve_refund(refund_id, support_id, "policy ok") == "approved"
        db.session.commit()
        enqueue("execute_refund", refund_id)
        refund = db.session.get(Refund, refund_id)
        assert refund.status == "succeeded"
        return refund.refund_no


def reconcile(app: Flask, channel: str, day: date) -> RunOutcome:
    with app.app_context():
        return reconcile_day(channel, day)


def found(outcome: RunOutcome) -> set[tuple[str, str, str]]:
    assert outcome.error is None, outcome.error
    return {(finding.kind.value, finding.subject, finding.reference) for finding in outcome.findings}


@dataclass(frozen=True)
class InjectedDay:
    """Day D on one channel, with one discrepancy of each kind and everything else clean."""

    channel: str
    expected: set[tuple[str, str, str]]
    status_trade_no: str  # paid at the channel, still created here (its callback was dropped)
    clean_trade_nos: tuple[str, ...]


def inject_every_kind(app: Flask, clock: Clock, client: FlaskClient, channel: str, support_id: int) -> InjectedDay:
    # Across midnight, both ways, neither reported: paid at the channel at 00:00:01 on D
    # but stamped 23:59:59 the day before by us, and paid at 23:59:59 on D but stamped
    # 00:00:01 the day after.
    set_beijing(clock, D - DAY, 23, 59, 50)
    early = pay(app, client, channel, settle=False)
    set_beijing(clock, D, 0, 0, 1)
    pay_at_emulator(app, attempt_row(app, early).qr_code)
    assert attempt_row(app, early).succeeded_at == utc_of(D, 0, 0, 1)
    edit_attempt(app, early, succeeded_at=utc_of(D - DAY, 23, 59, 59))

    set_beijing(clock, D, 10)
    ghost = pay_ghost(app, clock, channel)  # missing_ours

    set_beijing(clock, D, 10, 10)
    never_paid = pay(app, client, channel, settle=False)  # missing_theirs: we think it succeeded
    edit_attempt(app, never_paid, status="succeeded", succeeded_at=utc_of(D, 10, 11), fee_fen=60,
                 channel_trade_no="NEVER-AT-THE-CHANNEL", next_query_at=None)

    set_beijing(clock, D, 11)
    wrong_amount = pay(app, client, channel, 12000)  # amount_mismatch
    edit_attempt(app, wrong_amount, amount_fen=12001)

    set_beijing(clock, D, 12)
    unsettled = pay(app, client, channel, drop_notify=True)  # status_mismatch
    assert attempt_row(app, unsettled).status == "created"

    set_beijing(clock, D, 13)
    wrong_fee = pay(app, client, channel, 20000)  # fee_mismatch
    assert attempt_row(app, wrong_fee).fee_fen == 120
    edit_attempt(app, wrong_fee, fee_fen=119)

    set_beijing(clock, D, 14)
    clean = pay(app, client, channel, 9990)
    set_beijing(clock, D, 15)
    clean_refund_no = refund_in_full(app, clean, support_id)
    set_beijing(clock, D, 16)
    clean_too = pay(app, client, channel, 30000)

    set_beijing(clock, D, 23, 59, 50)
    late = pay(app, client, channel, settle=False)
    set_beijing(clock, D, 23, 59, 59)
    pay_at_emulator(app, attempt_row(app, late).qr_code)
    edit_attempt(app, late, succeeded_at=utc_of(D + DAY, 0, 0, 1))

    set_beijing(clock, D + 2 * DAY, 11)  # the bills of D − 1, D and D + 1 are all out
    return InjectedDay(
        channel=channel,
        expected={
            ("missing_ours", "payment", ghost),
            ("missing_theirs", "payment", never_paid),
            ("amount_mismatch", "payment", wrong_amount),
            ("status_mismatch", "payment", unsettled),
            ("fee_mismatch", "payment", wrong_fee),
        },
        status_trade_no=unsettled,
        clean_trade_nos=(early, clean, clean_refund_no, clean_too, late),
    )
