"""Asynchronous notifications from the Alipay gateway emulator: signed as Alipay signs
them, delivered to the notify_url, retried until the answer is exactly ``success``."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.gateway.notifier import stop_background_notifier
from app.payments.channels.alipay import AlipayChannel, verify_params
from app.payments.channels.base import TradeState
from app.payments.channels.crypto import RsaKey
from tests.conftest import Clock
from tests.gateway.helpers import (
    OUT_TRADE_NO,
    SUBJECT,
    charge,
    deliver,
    notifications,
    pay,
    qr_path,
    receiver,
    sdk_client,
)


def test_payment_sends_a_signed_notification_to_the_notify_url(
    app: Flask,
    channel: AlipayChannel,
    client: FlaskClient,
    clock: Clock,
    gateway_public_key: RsaKey,
) -> None:
    notify = receiver(app, "success")
    pay(channel, client, clock)
    [form] = notify.forms()
    assert verify_params(form, gateway_public_key)
    expected = {
        "notify_type": "trade_status_sync",
        "trade_status": "TRADE_SUCCESS",
        "sign_type": "RSA2",
        "charset": "utf-8",
        "version": "1.0",
        "app_id": "2021000000000001",
        "seller_id": "2088000000000001",
        "out_trade_no": OUT_TRADE_NO,
        "subject": SUBJECT,
        "total_amount": "94.50",
        "receipt_amount": "94.50",
        "buyer_pay_amount": "94.50",
        "invoice_amount": "94.50",
        "buyer_logon_id": "lea***@example.com",
        "gmt_create": "2026-11-20 10:00:00",
        "gmt_payment": "2026-11-20 10:00:00",
        "notify_time": "2026-11-20 10:00:00",
    }
    assert {name: form[name] for name in expected} == expected
    # The adapter, as the merchant's notify view uses it, accepts the notification.
    parsed = channel.parse_notification(notify.bodies[0], {})
    assert (parsed.out_trade_no, parsed.amount_fen, parsed.state) == (
        OUT_TRADE_NO, 9450, TradeState.PAID
    )
    assert parsed.notify_id == form["notify_id"]
    assert parsed.channel_trade_no == channel.query(OUT_TRADE_NO).channel_trade_no
    [record] = notifications(app)
    assert record.attempts == 1
    assert record.delivered_at == clock() and record.next_attempt_at is None


def test_alipays_sdk_verifies_the_notification(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock, keys_dir: Path
) -> None:
    notify = receiver(app, "success")
    pay(channel, client, clock)
    [form] = notify.forms()
    sign = form.pop("sign")
    assert sdk_client(keys_dir).verify(form, sign)


def test_a_tampered_notification_does_not_verify(
    app: Flask,
    channel: AlipayChannel,
    client: FlaskClient,
    clock: Clock,
    gateway_public_key: RsaKey,
) -> None:
    notify = receiver(app, "success")
    pay(channel, client, clock)
    [form] = notify.forms()
    assert not verify_params({**form, "total_amount": "0.01"}, gateway_public_key)


def test_a_notification_is_retried_on_schedule_until_the_answer_is_success(
    app: Flask,
    channel: AlipayChannel,
    client: FlaskClient,
    clock: Clock,
    gateway_public_key: RsaKey,
) -> None:
    notify = receiver(app, "fail", "Success", "success")  # only the exact word counts
    pay(channel, client, clock)
    assert len(notify.bodies) == 1
    assert deliver(app) == 0  # the first retry is 2 s away
    clock.advance(seconds=2)
    assert deliver(app) == 1
    clock.advance(seconds=4)
    assert deliver(app) == 0  # the second retry is 5 s after the first
    clock.advance(seconds=1)
    assert deliver(app) == 1
    forms = notify.forms()
    assert len({form["notify_id"] for form in forms}) == 1
    assert [form["notify_time"] for form in forms] == [
        "2026-11-20 10:00:00",
        "2026-11-20 10:00:02",
        "2026-11-20 10:00:07",
    ]
    assert all(verify_params(form, gateway_public_key) for form in forms)
    [record] = notifications(app)
    assert record.attempts == 3 and record.delivered_at == clock()
    assert record.last_answer == "HTTP 200: success"
    clock.advance(hours=1)
    assert deliver(app) == 0


def test_delivery_gives_up_when_the_retry_schedule_is_used_up(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    app.config["GATEWAY_NOTIFY_RETRY_SECONDS"] = [1, 2]
    notify = receiver(app, "failure")
    pay(channel, client, clock)
    for _ in range(5):
        clock.advance(seconds=2)
        deliver(app)
    assert len(notify.bodies) == 3  # the first attempt and one per scheduled retry
    [record] = notifications(app)
    assert record.attempts == 3
    assert record.delivered_at is None and record.next_attempt_at is None
    assert record.last_answer == "HTTP 200: failure"


def test_an_unreachable_notify_url_is_retried(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    # Nothing is mounted for this host, so the POST fails at the connection.
    path = qr_path(channel.precreate(charge(clock, notify_url="http://127.0.0.1:9/notify")).qr_code)
    client.get(path)
    assert client.post(path + "/confirm").status_code == 200
    [record] = notifications(app)
    assert record.attempts == 1 and record.delivered_at is None
    assert record.last_answer == "ConnectionError"
    assert record.next_attempt_at is not None


def test_without_a_notify_url_nothing_is_owed(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    path = qr_path(channel.precreate(charge(clock, notify_url="")).qr_code)
    client.get(path)
    assert client.post(path + "/confirm").status_code == 200
    assert notifications(app) == []


@pytest.fixture
def background_app(app: Flask) -> Iterator[Flask]:
    app.config["GATEWAY_NOTIFY_SYNC"] = False
    yield app
    stop_background_notifier(app)


def test_the_background_notifier_delivers_without_a_caller(
    background_app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    notify = receiver(background_app, "success")
    pay(channel, client, clock)
    assert notify.received.wait(timeout=10)
    # Joining the thread lets it finish the round, which records the answer.
    stop_background_notifier(background_app)
    [record] = notifications(background_app)
    assert record.attempts == 1 and record.delivered_at is not None
