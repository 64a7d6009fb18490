"""`POST /notify/alipay`: only a verified notification for one of our attempts, for its
exact amount, moves money, and it moves it exactly once."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.catalog.models import Enrollment
from app.checkout.models import Order
from app.extensions import db
from app.ledger.models import JournalEntry, Posting
from app.ledger.services import balance, unbalanced_entry_ids
from app.payments.models import InboxNotification, PaymentAttempt, RejectedNotification
from tests.alipay_oracle import notification_fields, signed_body
from tests.helpers import attempt_of, checkout, login, make_course, make_learner

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def place_pending_order(app, client) -> tuple[str, str]:
    """A learner's pending order for a ¥100.00 course at 70 %: (order_no, out_trade_no)."""
    with app.app_context():
        course_id = make_course(10000, commission_bps=7000)
        make_learner()
    login(client)
    order_no = checkout(client, [course_id])
    with app.app_context():
        return order_no, attempt_of(order_no).out_trade_no


@pytest.fixture
def pending_order(app, client):
    return place_pending_order(app, client)


def counts(app) -> dict[str, int]:
    with app.app_context():
        return {
            "succeeded": db.session.scalar(
                select(func.count(PaymentAttempt.id)).where(PaymentAttempt.status == "succeeded")
            ),
            "paid_orders": db.session.scalar(
                select(func.count(Order.id)).where(Order.status == "paid")
            ),
            "enrollments": db.session.scalar(select(func.count(Enrollment.id))),
            "entries": db.session.scalar(select(func.count(JournalEntry.id))),
            "inbox": db.session.scalar(select(func.count(InboxNotification.id))),
            "rejected": db.session.scalar(select(func.count(RejectedNotification.id))),
        }


def post(client, body: bytes):
    return client.post("/notify/alipay", data=body, headers=FORM)


def test_notification_signed_by_independent_sdk_pays_the_order(app, client, pending_order):
    order_no, out_trade_no = pending_order
    response = post(client, signed_body(notification_fields(out_trade_no, 10000)))
    assert response.status_code == 200 and response.text == "success"
    assert counts(app) | {"rejected": 0} == {
        "succeeded": 1, "paid_orders": 1, "enrollments": 1, "entries": 1, "inbox": 1, "rejected": 0,
    }
    with app.app_context():
        # The channel keeps its 0.6 % fee: it owes us the rest.
        assert balance("channel:alipay") == 10000 - 60
        assert balance("platform:channel_fees") == 60
        assert balance("platform:revenue") == -3000
        assert unbalanced_entry_ids() == []


def test_same_notification_ten_times_books_one_payment(app, client, pending_order):
    _, out_trade_no = pending_order
    body = signed_body(notification_fields(out_trade_no, 10000))
    for _ in range(10):
        assert post(client, body).text == "success"
    assert counts(app) == {
        "succeeded": 1, "paid_orders": 1, "enrollments": 1, "entries": 1, "inbox": 1, "rejected": 0,
    }
    with app.app_context():
        row = db.session.scalar(select(InboxNotification))
        assert (row.status, row.deliveries) == ("processed", 10)


def test_two_notifications_of_one_payment_book_it_once(app, client, pending_order):
    _, out_trade_no = pending_order
    post(client, signed_body(notification_fields(out_trade_no, 10000, notify_id="first")))
    finished = notification_fields(out_trade_no, 10000, notify_id="second")
    finished["trade_status"] = "TRADE_FINISHED"
    assert post(client, signed_body(finished)).text == "success"
    assert counts(app)["entries"] == 1 and counts(app)["inbox"] == 2


TAMPERING = {
    "out_trade_no": "CC00000000000000000000P01",
    "total_amount": "0.01",
    "trade_status": "TRADE_CLOSED",
    "notify_id": "another",
    "app_id": "2021009999999999",
    "sign": "AAAA",
}


@pytest.mark.parametrize("field", sorted(TAMPERING))
def test_field_changed_after_signing_is_refused_and_changes_nothing(app, client, pending_order, field):
    _, out_trade_no = pending_order
    body = signed_body(notification_fields(out_trade_no, 10000), **{field: TAMPERING[field]})
    response = post(client, body)
    assert response.text == "failure"
    assert counts(app) == {
        "succeeded": 0, "paid_orders": 0, "enrollments": 0, "entries": 0, "inbox": 0, "rejected": 1,
    }


def _signed_with(ours: str, **overrides: str) -> bytes:
    fields = notification_fields(ours, 10000)
    fields.update(overrides)
    return signed_body(fields)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"app_id": "2021009999999999"}, "app_id"),
        ({"seller_id": "2088009999999999"}, "seller_id"),
        ({"total_amount": "1.00", "receipt_amount": "1.00"}, "amount"),
        ({"total_amount": "100.01"}, "amount"),
        ({"out_trade_no": "CC20261120000000999999P01"}, "unknown out_trade_no"),
    ],
)
def test_properly_signed_but_wrong_notification_is_refused_and_recorded(
    app, client, pending_order, overrides, reason
):
    _, out_trade_no = pending_order
    response = post(client, _signed_with(out_trade_no, **overrides))
    assert response.text == "failure"
    assert counts(app) == {
        "succeeded": 0, "paid_orders": 0, "enrollments": 0, "entries": 0, "inbox": 0, "rejected": 1,
    }
    with app.app_context():
        rejection = db.session.scalar(select(RejectedNotification))
        assert reason in rejection.reason


@pytest.mark.parametrize(
    "body",
    [b"", b"not a form", b"sign=%%%", b"\xff\xfe\x00", b"a=1&a=2", b"x" * 70000],
)
def test_garbage_is_refused_without_a_server_error(app, client, pending_order, body):
    response = post(client, body)
    assert response.status_code == 200 and response.text == "failure"
    assert counts(app)["inbox"] == 0 and counts(app)["entries"] == 0


def test_unknown_channel_is_not_found(client):
    assert client.post("/notify/paypal", data=b"x=1", headers=FORM).status_code == 404


def test_sale_is_split_into_tax_instructor_share_and_revenue(app, client):
    app.config["TAX_RATE"] = Decimal("0.05")
    order_no, _ = place_pending_order(app, client)
    with app.app_context():
        attempt = attempt_of(order_no)
        assert attempt.amount_fen == 10500
        out_trade_no, instructor_id = attempt.out_trade_no, attempt.order.lines[0].instructor_id
    post(client, signed_body(notification_fields(out_trade_no, 10500)))
    with app.app_context():
        assert balance("channel:alipay") == 10500 - 63
        assert balance("platform:channel_fees") == 63
        assert balance("tax:payable") == -500
        assert balance(f"instructor:{instructor_id}:pending") == -7000
        assert balance("platform:revenue") == -3000
        total = db.session.scalar(select(func.sum(Posting.amount_fen)))
        assert total == 0


def test_replaying_a_failed_notification_settles_it_or_records_why_not(app, client, pending_order):
    from app.accounts.services import create_user
    from app.payments.services import replay_notification
    from app.payments.transitions import compare_and_set

    order_no, out_trade_no = pending_order
    with app.app_context():
        support = create_user("support@example.com", "staff-password", "Sam", role="support")
        db.session.commit()
    # Stored, then failed in processing (say the attempt was missing at the time).
    client.application.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # the job is lost
    post(client, signed_body(notification_fields(out_trade_no, 10000)))
    client.application.config["REDIS_URL"] = None
    with app.app_context():
        row = db.session.scalar(select(InboxNotification))
        assert compare_and_set(InboxNotification, row.id, "inbox", "received", "fail", outcome="no attempt")
        row.amount_fen = 1  # and it still cannot be settled
        db.session.commit()
        settlement = replay_notification(row.id, support, "checking again")
        db.session.commit()
        row = db.session.get(InboxNotification, row.id)
        assert (row.status, settlement.outcome) == ("failed", "amount does not match the attempt")
        row.amount_fen = 10000  # the cause is fixed
        db.session.commit()
        assert replay_notification(row.id, support, "fixed").outcome == "paid"
        db.session.commit()
        assert db.session.get(InboxNotification, row.id).status == "processed"
        assert db.session.scalar(select(Order.status).where(Order.order_no == order_no)) == "paid"
