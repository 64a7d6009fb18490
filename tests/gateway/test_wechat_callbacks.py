"""TRANSACTION.SUCCESS callbacks from the emulated WeChat Pay: signed in the Wechatpay-*
headers, resource encrypted under the APIv3 key (both checked with wechatpayv3),
delivered on 200/204 and otherwise retried with the same event id."""
from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from requests.structures import CaseInsensitiveDict

from app.timeutil import as_aware
from tests.conftest import Clock
from tests.gateway.helpers import deliver, notifications
from tests.gateway.wechat_helpers import (
    NOTIFY_URL,
    OUT_TRADE_NO,
    Merchant,
    callback_recorder,
    code_path,
    pay_wechat,
)


def test_payment_sends_a_signed_encrypted_transaction_success_event(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    recorder = callback_recorder(app, 204)
    pay_wechat(merchant, client)
    [delivery] = recorder.deliveries
    assert delivery.url == NOTIFY_URL
    headers = CaseInsensitiveDict(delivery.headers)
    assert headers["Content-Type"] == "application/json"
    assert headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    assert headers["Wechatpay-Serial"].startswith("PUB_KEY_ID_")
    assert headers["Wechatpay-Timestamp"] == str(int(as_aware(clock()).timestamp()))
    assert merchant.callback_verifies(delivery)
    [event] = recorder.events()
    assert event["event_type"] == "TRANSACTION.SUCCESS"
    assert event["resource_type"] == "encrypt-resource"
    assert event["summary"] == "支付成功"
    assert event["create_time"] == "2026-11-20T10:00:00+08:00"
    resource = event["resource"]
    assert resource["algorithm"] == "AEAD_AES_256_GCM"
    assert resource["original_type"] == resource["associated_data"] == "transaction"
    assert len(resource["nonce"]) == 12
    transaction = merchant.decrypt(resource)
    assert transaction == merchant.query().json()  # the paid transaction, as queried
    assert transaction is not None and transaction["trade_state"] == "SUCCESS"
    [record] = notifications(app)
    assert record.channel == "wechat" and record.attempts == 1
    assert record.delivered_at == clock() and record.last_answer == "HTTP 204: "


def test_a_tampered_callback_neither_verifies_nor_decrypts(
    app: Flask, merchant: Merchant, client: FlaskClient
) -> None:
    recorder = callback_recorder(app, 200)
    pay_wechat(merchant, client)
    [delivery] = recorder.deliveries
    delivery.body = delivery.body.replace("TRANSACTION.SUCCESS", "TRANSACTION.SUCCES5")
    assert not merchant.callback_verifies(delivery)
    resource = dict(recorder.events()[0]["resource"])
    resource["associated_data"] = "refund"
    assert merchant.decrypt(resource) is None


def test_a_callback_is_retried_until_200_or_204_with_the_same_event_id(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    recorder = callback_recorder(app, 500, 400, 200)
    pay_wechat(merchant, client)
    assert len(recorder.deliveries) == 1
    assert deliver(app) == 0  # the first retry is 2 s away
    clock.advance(seconds=2)
    assert deliver(app) == 1
    clock.advance(seconds=5)
    assert deliver(app) == 1
    clock.advance(hours=1)
    assert deliver(app) == 0  # delivered: nothing more is owed
    events = recorder.events()
    assert len(events) == 3 and len({event["id"] for event in events}) == 1
    stamps = [CaseInsensitiveDict(d.headers)["Wechatpay-Timestamp"] for d in recorder.deliveries]
    assert [int(b) - int(a) for a, b in zip(stamps, stamps[1:])] == [2, 5]  # re-signed each time
    assert all(merchant.callback_verifies(delivery) for delivery in recorder.deliveries)
    [record] = notifications(app)
    assert record.attempts == 3 and record.last_answer == "HTTP 200: "


def test_the_wechat_retry_schedule_is_configurable_and_ends(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    app.config["GATEWAY_WECHAT_NOTIFY_RETRY_SECONDS"] = [1]
    recorder = callback_recorder(app, 503)
    pay_wechat(merchant, client)
    for _ in range(3):
        clock.advance(seconds=1)
        deliver(app)
    assert len(recorder.deliveries) == 2
    [record] = notifications(app)
    assert record.delivered_at is None and record.next_attempt_at is None


def test_an_unreachable_notify_url_is_retried(
    app: Flask, merchant: Merchant, client: FlaskClient
) -> None:
    answer = merchant.native(notify_url="http://127.0.0.1:9/notify/wechat")
    assert client.post(code_path(answer) + "/confirm").status_code == 200
    [record] = notifications(app)
    assert record.attempts == 1 and record.delivered_at is None
    assert record.last_answer == "ConnectionError" and record.next_attempt_at is not None


def test_the_index_lists_trades_of_both_channels(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    callback_recorder(app, 204)
    pay_wechat(merchant, client)
    merchant.native("W20261120000002")
    clock.advance(hours=3)
    for address in ("/gateway/", "/gateway/alipay/"):
        page = client.get(address).get_data(as_text=True)
        assert OUT_TRADE_NO in page and "W20261120000002" in page
        assert "WeChat Pay" in page and "SUCCESS" in page and "CLOSED" in page
        assert "delivered after 1 attempt" in page
