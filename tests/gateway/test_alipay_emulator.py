"""The Alipay gateway emulator, driven through the real channel adapter over the
in-process transport: same signatures, same wire format as against openapi.alipay.com."""
from __future__ import annotations

import json
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.gateway.models import GatewayAlipayTrade, GatewayNotification
from app.gateway.notifier import deliver_due_notifications, stop_background_notifier
from app.payments.channels.alipay import (
    AlipayChannel,
    AlipaySettings,
    extract_response_node,
    sign_params,
    verify_params,
)
from app.payments.channels.base import ChannelRefused, ChargeRequest, TradeState
from app.payments.channels.crypto import (
    generate_rsa_keypair,
    load_private_key,
    load_public_key,
    rsa2_verify,
)
from app.payments.registry import alipay_settings
from app.timeutil import as_aware
from tests.conftest import TEST_BASE_URL, Clock

GATEWAY_URL = TEST_BASE_URL + "/gateway/alipay/gateway.do"
NOTIFY_PATH = "/test-only/alipay-notify"
OUT_TRADE_NO = "P20261120000001"


@pytest.fixture
def channel(app: Flask, clock: Clock) -> AlipayChannel:
    return AlipayChannel(
        alipay_settings(app.config), app.extensions["cashier.http"], clock=lambda: as_aware(clock())
    )


@pytest.fixture
def gateway_public_key(keys_dir: Path):  # noqa: ANN201
    return load_public_key((keys_dir / "alipay_gateway_public.pem").read_text())


class NotifyReceiver:
    """A stand-in merchant notify endpoint answering a scripted sequence of bodies."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.bodies: list[bytes] = []
        self.received = threading.Event()

    def __call__(self) -> str:
        self.bodies.append(request.get_data())
        self.received.set()
        return self.answers[min(len(self.bodies), len(self.answers)) - 1]

    def forms(self) -> list[dict[str, str]]:
        return [dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)) for body in self.bodies]


def receiver(app: Flask, *answers: str) -> NotifyReceiver:
    endpoint = NotifyReceiver(list(answers))
    app.add_url_rule(NOTIFY_PATH, "test_only_alipay_notify", endpoint, methods=["POST"])
    return endpoint


def charge(clock: Clock, amount_fen: int = 9450, minutes: int = 15, out_trade_no: str = OUT_TRADE_NO) -> ChargeRequest:
    return ChargeRequest(
        out_trade_no=out_trade_no,
        amount_fen=amount_fen,
        subject="Python 入门课",
        expires_at=as_aware(clock() + timedelta(minutes=minutes)),
        notify_url=TEST_BASE_URL + NOTIFY_PATH,
    )


def qr_path(qr_code: str) -> str:
    return urlsplit(qr_code).path


def deliver(app: Flask) -> int:
    with app.app_context():
        return deliver_due_notifications()


def notifications(app: Flask) -> list[GatewayNotification]:
    with app.app_context():
        rows = list(db.session.scalars(select(GatewayNotification)))
        db.session.expunge_all()
        return rows


# --- precreate -------------------------------------------------------------------------


def test_precreate_returns_a_qr_code_on_the_public_base_url(channel: AlipayChannel, clock: Clock) -> None:
    intent = channel.precreate(charge(clock))
    assert intent.out_trade_no == OUT_TRADE_NO
    assert re.fullmatch(r"http://cashier\.test/gateway/alipay/qr/[\w-]{16,}", intent.qr_code)


def test_precreating_again_with_the_same_amount_returns_the_same_qr_code(
    channel: AlipayChannel, clock: Clock
) -> None:
    first = channel.precreate(charge(clock))
    clock.advance(minutes=1)
    assert channel.precreate(charge(clock)).qr_code == first.qr_code


def test_precreating_again_with_another_amount_is_refused(channel: AlipayChannel, clock: Clock) -> None:
    channel.precreate(charge(clock))
    with pytest.raises(ChannelRefused) as refused:
        channel.precreate(charge(clock, amount_fen=9451))
    assert refused.value.code == "ACQ.CONTEXT_INCONSISTENT"


# --- scan, query, pay ------------------------------------------------------------------


def test_query_before_the_qr_code_is_opened_finds_no_trade(channel: AlipayChannel, clock: Clock) -> None:
    channel.precreate(charge(clock))
    assert channel.query(OUT_TRADE_NO).state is TradeState.NOT_FOUND


def test_opening_the_qr_page_creates_a_waiting_trade(
    channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    intent = channel.precreate(charge(clock))
    page = client.get(qr_path(intent.qr_code))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for expected in ("Alipay sandbox", "支付宝沙箱", "CourseCashier", "Python 入门课", "¥94.50", "Confirm", "Cancel"):
        assert expected in text
    status = channel.query(OUT_TRADE_NO)
    assert status.state is TradeState.PENDING
    assert status.amount_fen == 9450
    assert status.channel_trade_no and status.channel_trade_no.startswith("20261120")


def test_confirming_pays_the_trade(channel: AlipayChannel, client: FlaskClient, clock: Clock) -> None:
    path = qr_path(channel.precreate(charge(clock)).qr_code)
    client.get(path)
    clock.advance(minutes=2)
    page = client.post(path + "/confirm")
    assert page.status_code == 200
    assert "Payment successful" in page.get_data(as_text=True)
    assert "Confirm" not in page.get_data(as_text=True)
    status = channel.query(OUT_TRADE_NO)
    assert status.state is TradeState.PAID
    assert status.amount_fen == 9450
    assert status.paid_at == as_aware(clock())


def test_query_of_a_paid_trade_carries_alipay_fields(
    app: Flask, client: FlaskClient, channel: AlipayChannel, clock: Clock, gateway_public_key
) -> None:
    path = qr_path(channel.precreate(charge(clock)).qr_code)
    client.get(path)
    client.post(path + "/confirm")
    body = post_signed(app, clock, "alipay.trade.query", {"out_trade_no": OUT_TRADE_NO}).text
    node_text, sign = extract_response_node(body, "alipay.trade.query")
    assert sign and rsa2_verify(node_text.encode(), sign, gateway_public_key)
    node = json.loads(node_text)
    assert node["trade_status"] == "TRADE_SUCCESS"
    assert node["total_amount"] == node["buyer_pay_amount"] == "94.50"
    assert node["buyer_logon_id"] == "lea***@example.com"
    assert node["send_pay_date"] == "2026-11-20 10:00:00"  # Beijing time of the clock
    assert re.fullmatch(r"2026112022001\d{9}", node["trade_no"])


def test_cancelling_leaves_the_trade_waiting(channel: AlipayChannel, client: FlaskClient, clock: Clock) -> None:
    path = qr_path(channel.precreate(charge(clock)).qr_code)
    client.get(path)
    page = client.post(path + "/cancel")
    assert "cancelled" in page.get_data(as_text=True)
    assert channel.query(OUT_TRADE_NO).state is TradeState.PENDING


def test_an_unknown_qr_token_is_a_404_page(client: FlaskClient) -> None:
    page = client.get("/gateway/alipay/qr/no-such-token")
    assert page.status_code == 404
    assert "Unknown QR code" in page.get_data(as_text=True)


# --- close and expiry ------------------------------------------------------------------


def test_closing_a_waiting_trade_closes_it_and_the_page_stops_offering_payment(
    channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    path = qr_path(channel.precreate(charge(clock)).qr_code)
    client.get(path)
    assert channel.close(OUT_TRADE_NO) is TradeState.CLOSED
    assert channel.close(OUT_TRADE_NO) is TradeState.CLOSED  # closing twice is harmless
    assert channel.query(OUT_TRADE_NO).state is TradeState.CLOSED
    page = client.get(path).get_data(as_text=True)
    assert "closed by the merchant" in page and "Confirm" not in page
    assert client.post(path + "/confirm").status_code == 409
    assert channel.query(OUT_TRADE_NO).state is TradeState.CLOSED


def test_closing_an_unopened_qr_code_finds_no_trade_but_blocks_a_later_scan(
    channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    path = qr_path(channel.precreate(charge(clock)).qr_code)
    assert channel.close(OUT_TRADE_NO) is TradeState.NOT_FOUND
    page = client.get(path).get_data(as_text=True)
    assert "Confirm" not in page
    assert client.post(path + "/confirm").status_code == 409
    assert channel.query(OUT_TRADE_NO).state is TradeState.NOT_FOUND


def test_closing_a_paid_trade_is_refused(channel: AlipayChannel, client: FlaskClient, clock: Clock) -> None:
    path = qr_path(channel.precreate(charge(clock)).qr_code)
    client.get(path)
    client.post(path + "/confirm")
    with pytest.raises(ChannelRefused) as refused:
        channel.close(OUT_TRADE_NO)
    assert refused.value.code == "ACQ.TRADE_STATUS_ERROR"
    assert channel.query(OUT_TRADE_NO).state is TradeState.PAID


def test_an_unpaid_trade_closes_when_its_timeout_passes(
    channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    path = qr_path(channel.precreate(charge(clock, minutes=15)).qr_code)
    client.get(path)
    clock.advance(minutes=14, seconds=59)
    assert channel.query(OUT_TRADE_NO).state is TradeState.PENDING
    clock.advance(seconds=1)
    assert channel.query(OUT_TRADE_NO).state is TradeState.CLOSED
    assert "expired" in client.get(path).get_data(as_text=True)
    assert client.post(path + "/confirm").status_code == 409


def test_an_expired_qr_code_can_no_longer_be_opened_or_precreated(
    channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    path = qr_path(channel.precreate(charge(clock, minutes=15)).qr_code)
    clock.advance(minutes=16)
    assert "expired" in client.get(path).get_data(as_text=True)
    assert channel.query(OUT_TRADE_NO).state is TradeState.NOT_FOUND
    with pytest.raises(ChannelRefused) as refused:
        channel.precreate(charge(clock))
    assert refused.value.code == "ACQ.TRADE_HAS_CLOSE"


# --- authentication --------------------------------------------------------------------


def post_signed(
    app: Flask, clock: Clock, method: str, biz: dict[str, str], private_pem: str | None = None
) -> requests.Response:
    """A hand-built request, signed with the merchant key unless another key is given."""
    settings = alipay_settings(app.config)
    params = {
        "app_id": settings.app_id,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": "2026-11-20 10:00:00",
        "version": "1.0",
        "biz_content": json.dumps(biz, separators=(",", ":")),
    }
    params["sign"] = sign_params(params, load_private_key(private_pem or settings.app_private_key_pem))
    return app.extensions["cashier.http"].post(GATEWAY_URL, data=params, timeout=5)


def test_a_request_signed_with_another_key_is_refused_with_a_signed_answer(
    app: Flask, clock: Clock, gateway_public_key
) -> None:
    stranger_private, _ = generate_rsa_keypair()
    response = post_signed(app, clock, "alipay.trade.query", {"out_trade_no": OUT_TRADE_NO}, stranger_private)
    assert response.status_code == 200
    node_text, sign = extract_response_node(response.text, "alipay.trade.query")
    assert json.loads(node_text)["code"] == "40002"
    assert json.loads(node_text)["sub_code"] == "isv.invalid-signature"
    assert sign and rsa2_verify(node_text.encode(), sign, gateway_public_key)


def test_the_adapter_raises_when_its_signature_is_refused(app: Flask, clock: Clock) -> None:
    stranger_private, _ = generate_rsa_keypair()
    real = alipay_settings(app.config)
    settings = AlipaySettings(
        app_id=real.app_id,
        seller_id=real.seller_id,
        app_private_key_pem=stranger_private,
        alipay_public_key_pem=real.alipay_public_key_pem,
        gateway_url=real.gateway_url,
    )
    channel = AlipayChannel(settings, app.extensions["cashier.http"], clock=lambda: as_aware(clock()))
    with pytest.raises(ChannelRefused) as refused:
        channel.precreate(charge(clock))
    assert refused.value.code == "isv.invalid-signature"
    with app.app_context():
        assert db.session.scalar(select(GatewayAlipayTrade)) is None


def test_a_tampered_parameter_breaks_the_signature(app: Flask, clock: Clock) -> None:
    settings = alipay_settings(app.config)
    params = {
        "app_id": settings.app_id, "method": "alipay.trade.precreate", "charset": "utf-8",
        "sign_type": "RSA2", "timestamp": "2026-11-20 10:00:00", "version": "1.0",
        "biz_content": '{"out_trade_no":"X1","total_amount":"94.50","subject":"s"}',
    }
    params["sign"] = sign_params(params, load_private_key(settings.app_private_key_pem))
    params["biz_content"] = params["biz_content"].replace("94.50", "0.01")
    body = app.extensions["cashier.http"].post(GATEWAY_URL, data=params, timeout=5).text
    assert '"sub_code":"isv.invalid-signature"' in body


def test_an_unknown_method_is_refused(app: Flask, clock: Clock) -> None:
    body = post_signed(app, clock, "alipay.trade.pay", {"out_trade_no": OUT_TRADE_NO}).text
    assert body.startswith('{"error_response":{"code":"40002"')
    assert '"sub_code":"isv.invalid-method"' in body


def test_the_api_is_csrf_exempt_while_the_sandbox_buttons_are_not(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    path = qr_path(channel.precreate(charge(clock)).qr_code)
    page = client.get(path).get_data(as_text=True)
    assert client.post(path + "/confirm").status_code == 400
    assert channel.query(OUT_TRADE_NO).state is TradeState.PENDING
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    assert client.post(path + "/confirm", data={"csrf_token": token.group(1)}).status_code == 200
    assert channel.query(OUT_TRADE_NO).state is TradeState.PAID


# --- notifications ---------------------------------------------------------------------


def pay(channel: AlipayChannel, client: FlaskClient, clock: Clock) -> None:
    path = qr_path(channel.precreate(charge(clock)).qr_code)
    client.get(path)
    assert client.post(path + "/confirm").status_code == 200


def test_payment_sends_a_signed_notification_to_the_notify_url(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock, gateway_public_key
) -> None:
    notify = receiver(app, "success")
    pay(channel, client, clock)
    [form] = notify.forms()
    assert verify_params(form, gateway_public_key)
    assert form["sign_type"] == "RSA2"
    expected = {
        "notify_type": "trade_status_sync", "trade_status": "TRADE_SUCCESS", "charset": "utf-8",
        "version": "1.0", "out_trade_no": OUT_TRADE_NO, "total_amount": "94.50",
        "receipt_amount": "94.50", "buyer_pay_amount": "94.50", "invoice_amount": "94.50",
        "app_id": "2021000000000001", "seller_id": "2088000000000001", "subject": "Python 入门课",
        "buyer_logon_id": "lea***@example.com", "gmt_payment": "2026-11-20 10:00:00",
    }
    assert {name: form[name] for name in expected} == expected
    # The adapter, as the merchant's notify view uses it, accepts the notification.
    parsed = channel.parse_notification(notify.bodies[0], {})
    assert (parsed.out_trade_no, parsed.amount_fen, parsed.state) == (OUT_TRADE_NO, 9450, TradeState.PAID)
    assert parsed.channel_trade_no == channel.query(OUT_TRADE_NO).channel_trade_no
    [record] = notifications(app)
    assert record.attempts == 1 and record.delivered_at == clock() and record.next_attempt_at is None


def test_a_tampered_notification_does_not_verify(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock, gateway_public_key
) -> None:
    notify = receiver(app, "success")
    pay(channel, client, clock)
    [form] = notify.forms()
    assert not verify_params({**form, "total_amount": "0.01"}, gateway_public_key)


def test_a_notification_is_retried_on_schedule_until_the_answer_is_success(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock, gateway_public_key
) -> None:
    notify = receiver(app, "fail", "Success", "success")  # only the exact word counts
    pay(channel, client, clock)
    assert len(notify.bodies) == 1
    assert deliver(app) == 0  # the first retry is 2 s away
    clock.advance(seconds=2)
    assert deliver(app) == 1
    clock.advance(seconds=4)
    assert deliver(app) == 0
    clock.advance(seconds=1)
    assert deliver(app) == 1
    forms = notify.forms()
    assert len(forms) == 3
    assert len({form["notify_id"] for form in forms}) == 1
    assert [form["notify_time"] for form in forms] == [
        "2026-11-20 10:00:00", "2026-11-20 10:00:02", "2026-11-20 10:00:07"]
    assert all(verify_params(form, gateway_public_key) for form in forms)
    [record] = notifications(app)
    assert record.attempts == 3 and record.delivered_at is not None
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
    assert len(notify.bodies) == 3
    [record] = notifications(app)
    assert record.attempts == 3 and record.delivered_at is None and record.next_attempt_at is None
    assert record.last_answer == "HTTP 200: failure"


def test_without_a_notify_url_nothing_is_sent(app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock) -> None:
    request_without = ChargeRequest(OUT_TRADE_NO, 9450, "课", as_aware(clock() + timedelta(minutes=15)), "")
    path = qr_path(channel.precreate(request_without).qr_code)
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
    for _ in range(100):  # the outcome is recorded just after the answer arrives
        [record] = notifications(background_app)
        if record.delivered_at is not None:
            break
        notify.received.wait(0.05)
    assert record.delivered_at is not None and record.attempts == 1


# --- the developer's list --------------------------------------------------------------


def test_the_index_lists_trades_with_status_and_delivery(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    receiver(app, "success")
    pay(channel, client, clock)
    channel.precreate(charge(clock, out_trade_no="P20261120000002"))
    clock.advance(minutes=20)
    page = client.get("/gateway/alipay/").get_data(as_text=True)
    assert OUT_TRADE_NO in page and "P20261120000002" in page
    assert "TRADE_SUCCESS" in page and "TRADE_CLOSED" in page
    assert "delivered after 1 attempt" in page
