"""A payment is never lost or stuck because a callback was lost, late, duplicated or out
of order; expiry asks the channel first; money an order cannot keep goes back.

The emulator's fault modes misbehave on purpose; time is the injected clock, and the
periodic work is `tick()`, as `flask jobs tick` runs it.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.cart.models import Coupon
from app.catalog.models import Enrollment
from app.checkout.models import Order
from app.extensions import db
from app.gateway import faults
from app.gateway.notifier import deliver_due_notifications
from app.gateway.wechat_models import GatewayWechatRefund, GatewayWechatTrade
from app.jobs.periodic import tick
from app.jobs.tasks import expire_order
from app.ledger import accounts
from app.ledger.models import JournalEntry
from app.ledger.services import balance, unbalanced_entry_ids
from app.payments.channels.base import TradeState, TradeStatus
from app.payments.models import InboxNotification, OrphanPayment, PaymentAttempt, Refund
from app.payments.registry import get_channel
from app.payments.settlement import apply_trade_status
from tests.alipay_oracle import notification_fields, signed_body
from tests.helpers import (
    attempt_of,
    checkout,
    login,
    make_coupon,
    make_course,
    make_learner,
    pay_at_emulator,
    scan_at_emulator,
)

CHANNELS = ["alipay", "wechat"]


def set_fault(app, mode: str, **where) -> None:
    with app.app_context():
        faults.set_fault(mode, **where)
        db.session.commit()


def clear_faults(app) -> None:
    with app.app_context():
        faults.clear_faults()
        db.session.commit()


def run_ticks(app, clock, seconds: int, step: int = 10) -> None:
    """Let ``seconds`` of simulated time pass, with the periodic round every ``step``."""
    for _ in range(seconds // step):
        clock.advance(seconds=step)
        with app.app_context():
            tick()


def order_row(app, order_no: str) -> Order:
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.order_no == order_no))
        db.session.expunge(order)
        return order


def attempts(app, order_no: str) -> list[tuple[str, str]]:
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.order_no == order_no))
        return [
            (attempt.channel, attempt.status)
            for attempt in db.session.scalars(
                select(PaymentAttempt).where(PaymentAttempt.order_id == order.id).order_by(PaymentAttempt.id)
            )
        ]


def qr_of(app, order_no: str) -> str:
    with app.app_context():
        qr = attempt_of(order_no).qr_code
        assert qr, "no QR code was issued"
        return qr


def count(app, column, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(column)).where(*where))


def channel_state(app, channel: str, out_trade_no: str) -> TradeState:
    with app.app_context():
        return get_channel(channel).query(out_trade_no).state


def channel_calls(app, channel: str, out_trade_no: str, since: int = 0) -> list[str]:
    """The calls about this trade that went out to the channel (the emulator): "query",
    "close" and so on, in order, from the ``since``-th request on."""
    calls = []
    for request in app.extensions["test.transport"].sent[since:]:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
        if channel == "alipay" and "method=alipay.trade." in body and out_trade_no in body:
            calls.append(body.split("method=alipay.trade.", 1)[1].split("&", 1)[0])
        elif channel == "wechat" and f"/out-trade-no/{out_trade_no}" in request.url:
            calls.append("close" if request.url.endswith("/close") else "query")
    return calls


@pytest.fixture
def learner(app, client):
    with app.app_context():
        course_ids = [make_course(10000 + index, slug=f"c{index}") for index in range(4)]
        make_learner()
    login(client)
    return course_ids


# --- lost, late, duplicated and shuffled callbacks ------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
def test_with_every_callback_dropped_paid_orders_end_paid_by_active_query(
    app, client, clock, learner, channel
):
    set_fault(app, "drop_notify")
    paid_now = checkout(client, [learner[0]], channel=channel)
    pay_at_emulator(app, qr_of(app, paid_now))
    paid_later = checkout(client, [learner[1]], channel=channel)
    assert order_row(app, paid_now).status == "pending"  # the callback never came

    run_ticks(app, clock, 120)
    assert order_row(app, paid_now).status == "paid"
    assert order_row(app, paid_later).status == "pending"

    run_ticks(app, clock, 120)  # the second QR is now four minutes old, still unpaid
    pay_at_emulator(app, qr_of(app, paid_later))
    run_ticks(app, clock, 120)
    assert order_row(app, paid_later).status == "paid"
    with app.app_context():
        assert unbalanced_entry_ids() == []
        assert db.session.scalar(select(func.count(JournalEntry.id))) == 2


def test_with_every_callback_duplicated_and_shuffled_each_order_is_paid_once(
    app, client, clock, learner
):
    set_fault(app, "duplicate_notify")
    set_fault(app, "shuffle_notify")
    order_nos = [
        checkout(client, [course_id], channel=CHANNELS[index % 2])
        for index, course_id in enumerate(learner)
    ]
    for order_no in order_nos:
        pay_at_emulator(app, qr_of(app, order_no))
    assert {order_row(app, no).status for no in order_nos} == {"pending"}  # held back

    with app.app_context():
        assert deliver_due_notifications() >= len(order_nos)
    assert {order_row(app, no).status for no in order_nos} == {"paid"}
    total_fen = sum(order_row(app, no).total_fen for no in order_nos)
    with app.app_context():
        assert db.session.scalar(select(func.count(JournalEntry.id))) == len(order_nos)
        assert unbalanced_entry_ids() == []
        received = balance(accounts.channel("alipay")) + balance(accounts.channel("wechat"))
        assert received + balance(accounts.CHANNEL_FEES) == total_fen
        assert db.session.scalar(select(func.count(Enrollment.id))) == len(order_nos)
        inbox = list(db.session.scalars(select(InboxNotification)))
        assert len(inbox) == len(order_nos) and all(row.deliveries == 2 for row in inbox)
    assert count(app, PaymentAttempt.id, PaymentAttempt.status == "succeeded") == len(order_nos)


def test_a_late_callback_after_the_active_query_changes_nothing(app, client, clock, learner):
    set_fault(app, "delay_notify", delay_seconds=300)
    order_no = checkout(client, [learner[0]], channel="wechat")
    pay_at_emulator(app, qr_of(app, order_no))
    run_ticks(app, clock, 120)
    assert order_row(app, order_no).status == "paid"
    clock.advance(seconds=300)
    with app.app_context():
        assert deliver_due_notifications() == 1
        assert db.session.scalar(select(func.count(JournalEntry.id))) == 1


def test_the_status_poll_asks_the_channel_once_the_callback_is_overdue(app, client, clock, learner):
    set_fault(app, "drop_notify")
    order_no = checkout(client, [learner[0]])
    pay_at_emulator(app, qr_of(app, order_no))
    assert client.get(f"/orders/{order_no}/status").json["status"] == "pending"
    clock.advance(seconds=61)
    assert client.get(f"/orders/{order_no}/status").json["status"] == "paid"


# --- expiry -------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
def test_an_unpaid_order_closes_at_the_deadline_and_gives_its_coupon_back(
    app, client, clock, learner, channel
):
    with app.app_context():
        make_coupon("ONCE", max_redemptions=1)
    order_no = checkout(client, [learner[0]], coupon="ONCE", channel=channel)
    scan_at_emulator(app, qr_of(app, order_no))
    with app.app_context():
        out_trade_no = attempt_of(order_no).out_trade_no
        assert db.session.scalar(select(Coupon.redeemed_count)) == 1

    run_ticks(app, clock, 14 * 60)
    assert order_row(app, order_no).status == "pending"
    before_deadline = len(app.extensions["test.transport"].sent)
    run_ticks(app, clock, 70)
    order = order_row(app, order_no)
    assert order.status == "closed" and order.closed_at is not None
    assert attempts(app, order_no) == [(channel, "closed")]
    # The channel was asked at the deadline, and says closed: not closed here alone.
    assert channel_calls(app, channel, out_trade_no, since=before_deadline)[:1] == ["query"]
    assert channel_state(app, channel, out_trade_no) is TradeState.CLOSED
    with app.app_context():
        assert db.session.scalar(select(Coupon.redeemed_count)) == 0


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_trade_paid_one_second_before_the_deadline_is_never_closed(
    app, client, clock, learner, channel
):
    set_fault(app, "drop_notify")
    order_no = checkout(client, [learner[0]], channel=channel)
    deadline = order_row(app, order_no).expires_at
    scan_at_emulator(app, qr_of(app, order_no))
    clock.current = deadline - timedelta(seconds=1)
    pay_at_emulator(app, qr_of(app, order_no))
    clock.current = deadline
    with app.app_context():
        order_id, out_trade_no = attempt_of(order_no).order_id, attempt_of(order_no).out_trade_no
        # The expiry itself, not an active query that happens to run first.
        assert expire_order(order_id) == "left paid"
    assert order_row(app, order_no).status == "paid"
    assert attempts(app, order_no) == [(channel, "succeeded")]
    assert "close" not in channel_calls(app, channel, out_trade_no)
    assert channel_state(app, channel, out_trade_no) is TradeState.PAID


def test_an_order_whose_channel_does_not_answer_stays_pending_past_the_deadline(
    app, client, clock, learner
):
    order_no = checkout(client, [learner[0]])
    set_fault(app, "api_error", channel="alipay")
    run_ticks(app, clock, 15 * 60 + 30)
    assert order_row(app, order_no).status == "pending"  # its money might still arrive
    clear_faults(app)
    run_ticks(app, clock, 30)
    # Never scanned, so Alipay knows no trade to close: the QR's own expiry (a grace
    # after our deadline) is waited for before "not found" counts as closed.
    assert order_row(app, order_no).status == "pending"
    run_ticks(app, clock, 70)
    assert order_row(app, order_no).status == "closed"


# --- orphan payments ------------------------------------------------------------------------


def test_money_arriving_after_the_order_closed_is_fulfilled(app, client, clock, learner):
    with app.app_context():
        make_coupon("ONCE", max_redemptions=1)
    order_no = checkout(client, [learner[0]], coupon="ONCE")
    run_ticks(app, clock, 18 * 60)
    assert order_row(app, order_no).status == "closed"
    with app.app_context():
        attempt = attempt_of(order_no)
        body = signed_body(notification_fields(attempt.out_trade_no, attempt.amount_fen))
    response = client.post("/notify/alipay", data=body,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.data == b"success"
    assert order_row(app, order_no).status == "paid"
    with app.app_context():
        orphan = db.session.scalar(select(OrphanPayment))
        assert (orphan.resolution, orphan.refund_id) == ("fulfilled", None)
        assert "closed" in orphan.reason
        assert db.session.scalar(select(Coupon.redeemed_count)) == 1  # counted again
        assert db.session.scalar(select(func.count(Enrollment.id))) == 1


def test_a_second_payment_of_a_paid_order_is_refunded_automatically(app, client, clock, learner):
    order_no = checkout(client, [learner[0]], channel="alipay")
    alipay_qr = qr_of(app, order_no)
    scan_at_emulator(app, alipay_qr)
    with app.app_context():
        first = attempt_of(order_no).out_trade_no
    set_fault(app, "api_error", channel="alipay", out_trade_no=first)  # the close is lost
    assert client.post(f"/orders/{order_no}/channel", data={"channel": "wechat"}).status_code == 302
    assert attempts(app, order_no) == [("alipay", "created"), ("wechat", "created")]

    pay_at_emulator(app, qr_of(app, order_no))  # pays the WeChat QR
    clear_faults(app)
    pay_at_emulator(app, alipay_qr)  # and the Alipay QR, still open on the phone

    assert order_row(app, order_no).status == "paid"
    with app.app_context():
        refund = db.session.scalar(select(Refund))
        orphan = db.session.scalar(select(OrphanPayment))
        assert (refund.kind, refund.status, refund.amount_fen) == ("orphan", "succeeded", 10000)
        assert (orphan.resolution, orphan.refund_id) == ("refunded", refund.id)
        assert "already paid" in orphan.reason
        assert balance(accounts.UNALLOCATED_RECEIPTS) == 0
        assert balance(accounts.channel("alipay")) == 0  # in and back out
        assert balance(accounts.channel("wechat")) == 10000 - 60  # less the fee WeChat keeps
        assert balance(accounts.CHANNEL_FEES) == 60  # the refunded payment's fee came back
        assert unbalanced_entry_ids() == []
        assert db.session.scalar(
            select(func.count(JournalEntry.id)).where(JournalEntry.kind == "payment")
        ) == 1
    assert channel_state(app, "alipay", first) is TradeState.CLOSED  # fully refunded
    listed = app.test_cli_runner().invoke(args=["payments", "orphans"])
    assert order_no in listed.output and "refunded" in listed.output
    assert "already paid by another attempt" in listed.output and "succeeded" in listed.output
    # The learner is told, on their orders page, that the second payment went back.
    orders_page = client.get("/orders").text
    assert "a second payment of ¥100.00 arrived and is returned automatically" in orders_page


def paid_unseen_then_ordered_again(app, client, clock, course_id: int, first: str, second: str) -> tuple[str, str]:
    """Two phones: the first order is paid at its channel, but its callback is late, so
    the site still shows it pending; its deadline passes, the learner orders the course
    again on the other channel and pays that too. Returns both order numbers."""
    first_no = checkout(client, [course_id], channel=first)
    with app.app_context():
        first_trade = attempt_of(first_no).out_trade_no
    set_fault(app, "delay_notify", channel=first, out_trade_no=first_trade, delay_seconds=30 * 60)
    pay_at_emulator(app, qr_of(app, first_no))
    clock.advance(minutes=16)  # past the first order's deadline; no round has run yet
    second_no = checkout(client, [course_id], channel=second)
    assert second_no != first_no
    pay_at_emulator(app, qr_of(app, second_no))
    assert order_row(app, second_no).status == "paid"
    return first_no, second_no


def test_paying_for_a_course_the_learner_already_owns_is_refunded(app, client, clock, learner):
    first, second = paid_unseen_then_ordered_again(app, client, clock, learner[0], "alipay", "wechat")
    run_ticks(app, clock, 60)  # the expiry asks Alipay first: paid, but the course is owned
    with app.app_context():
        refund = db.session.scalar(select(Refund))
        assert (refund.status, refund.amount_fen, refund.attempt.channel) == ("succeeded", 10000, "alipay")
        assert "already owns" in db.session.scalar(select(OrphanPayment.reason))
        assert db.session.scalar(select(func.count(Enrollment.id))) == 1
        assert balance(accounts.channel("alipay")) == 0
    run_ticks(app, clock, 16 * 60)
    assert order_row(app, first).status == "closed"
    assert "a second payment of ¥100.00 arrived and is returned automatically" in client.get("/orders").text


def test_a_refund_whose_answer_was_lost_is_checked_and_never_paid_twice(app, client, clock, learner):
    first, _ = paid_unseen_then_ordered_again(app, client, clock, learner[0], "wechat", "alipay")
    with app.app_context():
        out_trade_no = attempt_of(first).out_trade_no
    set_fault(app, "api_unknown", channel="wechat")  # the refund happens; the answer is lost
    clock.advance(minutes=15)
    with app.app_context():
        assert deliver_due_notifications() >= 1  # the late callback: paid, course owned
    with app.app_context():
        assert db.session.scalar(select(Refund.status)) == "processing"
    clear_faults(app)
    run_ticks(app, clock, 70)
    with app.app_context():
        refund = db.session.scalar(select(Refund))
        assert refund.status == "succeeded"
        assert balance(accounts.channel("wechat")) == 0
        # At the channel: one refund, of the whole amount, however often we asked.
        trade = db.session.scalar(
            select(GatewayWechatTrade).where(GatewayWechatTrade.out_trade_no == out_trade_no)
        )
        assert trade.refunded_fen == 10000
        assert db.session.scalar(select(func.count(GatewayWechatRefund.id))) == 1


# --- channel health -------------------------------------------------------------------------


def test_an_unhealthy_channel_leaves_the_offer_and_returns_after_its_cool_down(
    app, client, clock, learner
):
    set_fault(app, "api_error", channel="alipay")
    for course_id in learner[:3]:
        checkout(client, [course_id], channel="alipay")  # each QR request fails
    client.post(f"/cart/add/{learner[3]}")
    cart = client.get("/cart/").text
    assert 'value="alipay"' not in cart and 'value="wechat"' in cart
    assert "Temporarily unavailable" in cart
    report = app.test_cli_runner().invoke(args=["payments", "health"]).output
    assert "alipay   resting until" in report and "wechat   ok" in report
    refused = client.post("/cart/checkout", data={"channel": "alipay"}, follow_redirects=True)
    assert "please use another payment method" in refused.text  # the flashed reason
    assert count(app, Order.id) == 3

    clear_faults(app)
    clock.advance(seconds=app.config["CHANNEL_COOLDOWN_SECONDS"])
    cart = client.get("/cart/").text
    assert 'value="alipay"' in cart and "Temporarily unavailable" not in cart


def test_a_superseded_qr_whose_close_failed_is_closed_once_the_order_is_paid(
    app, client, clock, learner
):
    order_no = checkout(client, [learner[0]], channel="alipay")
    alipay_qr = qr_of(app, order_no)
    scan_at_emulator(app, alipay_qr)
    with app.app_context():
        first = attempt_of(order_no).out_trade_no
    set_fault(app, "api_error", channel="alipay", out_trade_no=first)
    client.post(f"/orders/{order_no}/channel", data={"channel": "wechat"})
    pay_at_emulator(app, qr_of(app, order_no))
    assert order_row(app, order_no).status == "paid"
    assert attempts(app, order_no) == [("alipay", "created"), ("wechat", "succeeded")]

    clear_faults(app)
    run_ticks(app, clock, 70)
    assert attempts(app, order_no) == [("alipay", "closed"), ("wechat", "succeeded")]
    assert channel_state(app, "alipay", first) is TradeState.CLOSED
    assert "close" in channel_calls(app, "alipay", first)


def test_a_paid_amount_the_attempt_never_asked_for_is_held_for_staff(app, client, clock, learner):
    order_no = checkout(client, [learner[0]])
    with app.app_context():
        attempt = attempt_of(order_no)
        reported = TradeStatus(attempt.out_trade_no, TradeState.PAID, amount_fen=1, channel_trade_no="T1")
        settlement = apply_trade_status(attempt.id, reported)
        db.session.commit()
        assert settlement.outcome.startswith("held for staff")
        assert attempt_of(order_no).status == "failed"
        orphan = db.session.scalar(select(OrphanPayment))
        assert (orphan.resolution, orphan.amount_fen) == ("held", 1)
        assert db.session.scalar(select(func.count(JournalEntry.id))) == 0
        assert db.session.scalar(select(func.count(Enrollment.id))) == 0
    run_ticks(app, clock, 16 * 60)
    assert order_row(app, order_no).status == "closed"  # nothing left that could pay it


def test_a_trade_the_channel_reports_paid_and_refunded_is_held_not_booked(app, client, clock, learner):
    """WeChat answers REFUND for a trade refunded at the channel (by hand, in the
    merchant portal) before we learnt it was paid: nothing is booked or granted."""
    order_no = checkout(client, [learner[0]], channel="wechat")
    with app.app_context():
        attempt = attempt_of(order_no)
        reported = TradeStatus(attempt.out_trade_no, TradeState.PAID, amount_fen=attempt.amount_fen,
                               channel_trade_no="4200000000000001", refunded=True)
        settlement = apply_trade_status(attempt.id, reported)
        db.session.commit()
        assert settlement.outcome == "held for staff: channel reports the trade paid and refunded there"
        assert attempt_of(order_no).status == "failed"
        orphan = db.session.scalar(select(OrphanPayment))
        assert (orphan.resolution, orphan.amount_fen) == ("held", attempt.amount_fen)
        assert db.session.scalar(select(func.count(JournalEntry.id))) == 0
        assert db.session.scalar(select(func.count(Enrollment.id))) == 0
