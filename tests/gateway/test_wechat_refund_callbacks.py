"""REFUND.SUCCESS callbacks from the emulated WeChat Pay: owed once per refund that named a
notify_url, signed and encrypted like TRANSACTION.SUCCESS (both checked with
wechatpayv3), retried with one event id, and subject to the notification fault modes of
the refunded trade."""
from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from requests.structures import CaseInsensitiveDict
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.gateway import faults
from app.gateway.models import GatewayAlipayTrade, GatewayNotification
from app.gateway.wechat_models import GatewayWechatRefund, GatewayWechatTrade
from app.payments.channels.alipay import AlipayChannel
from app.timeutil import as_aware
from tests.conftest import Clock
from tests.gateway.helpers import charge, deliver, notifications
from tests.gateway.wechat_helpers import (
    MCH_ID,
    MERCHANT_HOST,
    NOTIFY_URL,
    OUT_TRADE_NO,
    CallbackRecorder,
    Delivery,
    Merchant,
    callback_recorder,
    pay_wechat,
)

REFUND_NOTIFY_URL = MERCHANT_HOST + "/notify/wechat/refund"
# The refund answer's fields, which the callbacks must leave as they were.
REFUND_ANSWER_FIELDS = {
    "refund_id", "out_refund_no", "transaction_id", "out_trade_no", "channel",
    "user_received_account", "success_time", "create_time", "status", "funds_account",
    "amount",
}
REFUND_AMOUNT_FIELDS = {
    "total", "refund", "payer_total", "payer_refund", "settlement_refund",
    "settlement_total", "discount_refund", "currency", "refund_fee",
}


def refund_deliveries(recorder: CallbackRecorder) -> list[Delivery]:
    return [delivery for delivery in recorder.deliveries if delivery.url == REFUND_NOTIFY_URL]


def refund_events(recorder: CallbackRecorder) -> list[dict[str, Any]]:
    return [
        event
        for delivery, event in zip(recorder.deliveries, recorder.events())
        if delivery.url == REFUND_NOTIFY_URL
    ]


def refund_records(app: Flask) -> list[GatewayNotification]:
    return [record for record in notifications(app) if record.wechat_refund_id is not None]


def set_fault(app: Flask, mode: str, out_trade_no: str | None = OUT_TRADE_NO,
              delay_seconds: int = 0) -> None:
    with app.app_context():
        faults.set_fault(mode, "wechat", out_trade_no, delay_seconds)
        db.session.commit()


def test_a_refund_with_a_notify_url_sends_one_signed_encrypted_refund_success_event(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    recorder = callback_recorder(app, 204)
    pay_wechat(merchant, client)
    clock.advance(minutes=5)
    answer = merchant.refund("R1", 4000, notify_url=REFUND_NOTIFY_URL)
    assert answer.status_code == 200 and merchant.verifies(answer)
    refund = answer.json()
    # The API answer is the refund as before, and the query still agrees with it.
    assert set(refund) == REFUND_ANSWER_FIELDS and set(refund["amount"]) == REFUND_AMOUNT_FIELDS
    assert merchant.call("GET", "/v3/refund/domestic/refunds/R1").json() == refund

    [payment_delivery, delivery] = recorder.deliveries
    assert payment_delivery.url == NOTIFY_URL and delivery.url == REFUND_NOTIFY_URL
    headers = CaseInsensitiveDict(delivery.headers)
    assert headers["Content-Type"] == "application/json"
    assert headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    assert headers["Wechatpay-Serial"].startswith("PUB_KEY_ID_")
    assert headers["Wechatpay-Timestamp"] == str(int(as_aware(clock()).timestamp()))
    assert merchant.callback_verifies(delivery)

    payment_event, event = recorder.events()
    assert event["id"] != payment_event["id"]
    assert event["event_type"] == "REFUND.SUCCESS"
    assert event["resource_type"] == "encrypt-resource"
    assert event["summary"] == "退款成功"
    assert event["create_time"] == "2026-11-20T10:05:00+08:00"
    resource = event["resource"]
    assert resource["algorithm"] == "AEAD_AES_256_GCM"
    assert resource["original_type"] == resource["associated_data"] == "refund"
    assert len(resource["nonce"]) == 12 and resource["nonce"].isascii()
    assert merchant.decrypt(resource) == {
        "mchid": MCH_ID,
        "out_trade_no": OUT_TRADE_NO,
        "transaction_id": refund["transaction_id"],
        "out_refund_no": "R1",
        "refund_id": refund["refund_id"],
        "refund_status": "SUCCESS",
        "success_time": "2026-11-20T10:05:00+08:00",
        "user_received_account": "支付用户零钱",
        "amount": {"total": 9450, "refund": 4000, "payer_total": 9450, "payer_refund": 4000},
    }
    tampered = dict(resource, associated_data="transaction")
    assert merchant.decrypt(tampered) is None

    [record] = refund_records(app)
    assert record.channel == "wechat" and record.wechat_trade_id is None
    assert record.notify_url == REFUND_NOTIFY_URL and record.notify_id == event["id"]
    assert record.attempts == 1 and record.delivered_at == clock()
    assert record.last_answer == "HTTP 204: "


def test_a_refund_callback_is_retried_re_signed_with_the_same_event_id(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    recorder = callback_recorder(app, 204, 500, 503, 200)  # the payment takes the 204
    pay_wechat(merchant, client)
    assert merchant.refund("R1", 9450, notify_url=REFUND_NOTIFY_URL).status_code == 200
    assert len(refund_deliveries(recorder)) == 1
    assert deliver(app) == 0  # the first retry is 2 s away
    clock.advance(seconds=2)
    assert deliver(app) == 1
    clock.advance(seconds=5)
    assert deliver(app) == 1
    clock.advance(hours=1)
    assert deliver(app) == 0  # delivered: nothing more is owed

    deliveries = refund_deliveries(recorder)
    events = refund_events(recorder)
    assert len(events) == 3 and len({event["id"] for event in events}) == 1
    assert len({event["create_time"] for event in events}) == 1
    stamps = [CaseInsensitiveDict(d.headers)["Wechatpay-Timestamp"] for d in deliveries]
    assert [int(b) - int(a) for a, b in zip(stamps, stamps[1:])] == [2, 5]
    assert all(merchant.callback_verifies(delivery) for delivery in deliveries)
    # Encrypted afresh each time, the same refund each time.
    assert len({event["resource"]["nonce"] for event in events}) == 3
    plaintexts = [merchant.decrypt(event["resource"]) for event in events]
    assert plaintexts[0] is not None and plaintexts.count(plaintexts[0]) == 3
    [record] = refund_records(app)
    assert record.attempts == 3 and record.last_answer == "HTTP 200: "


def test_a_refund_without_a_notify_url_owes_no_callback(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    recorder = callback_recorder(app, 204)
    pay_wechat(merchant, client)
    assert merchant.refund("R1", 4000).status_code == 200
    clock.advance(hours=1)
    assert deliver(app) == 0
    assert [delivery.url for delivery in recorder.deliveries] == [NOTIFY_URL]
    assert refund_records(app) == []
    # Naming a notify_url on a repeat does not make the first refund owe one.
    assert merchant.refund("R1", 4000, notify_url=REFUND_NOTIFY_URL).status_code == 200
    assert refund_deliveries(recorder) == [] and refund_records(app) == []


def test_repeating_an_out_refund_no_owes_no_second_callback(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    recorder = callback_recorder(app, 204, 500, 204)  # the first refund attempt fails
    pay_wechat(merchant, client)
    first = merchant.refund("R1", 4000, notify_url=REFUND_NOTIFY_URL)
    again = merchant.refund("R1", 4000, notify_url=REFUND_NOTIFY_URL)
    other_url = merchant.refund("R1", 4000, notify_url=MERCHANT_HOST + "/elsewhere")
    assert first.json() == again.json() == other_url.json()
    assert len(refund_deliveries(recorder)) == 1  # the repeats did not send it again
    clock.advance(seconds=2)
    assert deliver(app) == 1  # only the retry of the one callback
    clock.advance(hours=1)
    assert deliver(app) == 0
    events = refund_events(recorder)
    assert len(events) == 2 and events[0]["id"] == events[1]["id"]
    assert {delivery.url for delivery in recorder.deliveries} == {NOTIFY_URL, REFUND_NOTIFY_URL}
    [record] = refund_records(app)
    assert record.delivered_at is not None and record.attempts == 2
    # A second refund of the same trade owes a callback of its own.
    assert merchant.refund("R2", 5450, notify_url=REFUND_NOTIFY_URL).status_code == 200
    assert len({event["id"] for event in refund_events(recorder)}) == 2
    assert len(refund_records(app)) == 2


def test_drop_notify_for_the_refunded_trade_drops_its_refund_callback(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    recorder = callback_recorder(app, 204)
    pay_wechat(merchant, client)
    pay_wechat(merchant, client, "W20261120000002")
    set_fault(app, "drop_notify", OUT_TRADE_NO)
    assert merchant.refund("R1", 4000, notify_url=REFUND_NOTIFY_URL).status_code == 200
    other = merchant.refund(
        "R2", 4000, out_trade_no="W20261120000002", notify_url=REFUND_NOTIFY_URL
    )
    assert other.status_code == 200
    clock.advance(hours=1)
    assert deliver(app) == 0
    sent = [merchant.decrypt(event["resource"]) for event in refund_events(recorder)]
    assert [plaintext and plaintext["out_refund_no"] for plaintext in sent] == ["R2"]
    dropped = next(r for r in refund_records(app) if r.delivered_at is None)
    assert dropped.attempts == 0 and dropped.next_attempt_at is None
    assert dropped.last_answer == "dropped (fault mode)"


def test_drop_notify_switched_on_later_stops_the_retries(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    recorder = callback_recorder(app, 204, 500)
    pay_wechat(merchant, client)
    assert merchant.refund("R1", 4000, notify_url=REFUND_NOTIFY_URL).status_code == 200
    set_fault(app, "drop_notify", None)
    clock.advance(seconds=2)
    assert deliver(app) == 0
    assert len(refund_deliveries(recorder)) == 1
    [record] = refund_records(app)
    assert record.next_attempt_at is None and record.last_answer == "dropped (fault mode)"


def test_delay_duplicate_and_shuffle_apply_to_refund_callbacks(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    recorder = callback_recorder(app, 204)
    pay_wechat(merchant, client)
    set_fault(app, "delay_notify", delay_seconds=30)
    set_fault(app, "duplicate_notify")
    assert merchant.refund("R1", 4000, notify_url=REFUND_NOTIFY_URL).status_code == 200
    assert refund_deliveries(recorder) == []  # not inline, even in sync mode
    clock.advance(seconds=29)
    assert deliver(app) == 0
    clock.advance(seconds=1)
    assert deliver(app) == 1
    events = refund_events(recorder)
    assert len(events) == 2 and events[0]["id"] == events[1]["id"]  # the same event twice

    other = "W20261120000002"  # under shuffle_notify only
    pay_wechat(merchant, client, other)
    set_fault(app, "shuffle_notify", other)
    answer = merchant.refund("R2", 100, out_trade_no=other, notify_url=REFUND_NOTIFY_URL)
    assert answer.status_code == 200
    assert len(refund_deliveries(recorder)) == 2  # held from the inline attempt
    assert deliver(app) == 1
    assert len(refund_deliveries(recorder)) == 3


def test_the_index_shows_refund_callbacks_on_their_trade(
    app: Flask, merchant: Merchant, client: FlaskClient
) -> None:
    callback_recorder(app, 204, 204, 500)
    pay_wechat(merchant, client)
    merchant.refund("R1", 4000, notify_url=REFUND_NOTIFY_URL)
    merchant.refund("R2", 1000, notify_url=REFUND_NOTIFY_URL)
    merchant.refund("R3", 1000)  # no notify_url: nothing to show
    page = " ".join(client.get("/gateway/").get_data(as_text=True).split())
    assert "delivered after 1 attempt" in page  # the payment
    assert "refund R1: delivered after 1 attempt" in page
    assert "refund R2: 1 attempt, next" in page and "HTTP 500" in page
    assert "refund R3" not in page


def test_a_notification_has_exactly_one_owner_of_its_channel(
    app: Flask, channel: AlipayChannel, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    callback_recorder(app, 204)
    pay_wechat(merchant, client)
    merchant.refund("R1", 4000)
    # Owners that own no notification yet, so only the CHECK can object.
    merchant.native("W20261120000002")
    channel.precreate(charge(clock))
    with app.app_context():
        refund = db.session.scalar(select(GatewayWechatRefund))
        unpaid = db.session.scalar(
            select(GatewayWechatTrade).where(GatewayWechatTrade.out_trade_no == "W20261120000002")
        )
        alipay_trade = db.session.scalar(select(GatewayAlipayTrade))
        assert refund is not None and unpaid is not None and alipay_trade is not None
        alipay_id = alipay_trade.id
        owners: list[dict[str, Any]] = [
            {"channel": "wechat", "wechat_trade_id": unpaid.id, "wechat_refund_id": refund.id},
            {"channel": "wechat"},
            {"channel": "alipay", "alipay_trade_id": alipay_id, "wechat_refund_id": refund.id},
            {"channel": "wechat", "alipay_trade_id": alipay_id, "wechat_refund_id": refund.id},
        ]
        for index, owner in enumerate(owners):
            db.session.add(
                GatewayNotification(
                    notify_id=f"bad-{index}", notify_url=REFUND_NOTIFY_URL, attempts=0,
                    created_at=clock(), **owner,
                )
            )
            with pytest.raises(IntegrityError, match="one_owner_of_its_channel"):
                db.session.flush()
            db.session.rollback()
        for index, owner in enumerate(
            [
                {"channel": "wechat", "wechat_refund_id": refund.id},
                {"channel": "wechat", "wechat_trade_id": unpaid.id},
                {"channel": "alipay", "alipay_trade_id": alipay_id},
            ]
        ):
            db.session.add(
                GatewayNotification(
                    notify_id=f"good-{index}", notify_url=REFUND_NOTIFY_URL, attempts=0,
                    created_at=clock(), **owner,
                )
            )
        db.session.flush()  # one owner of the row's channel: valid
        db.session.rollback()
