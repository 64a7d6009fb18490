"""The Alipay gateway emulator's open-platform API and sandbox page, driven through the
real channel adapter over the in-process transport: same signatures and wire format as
against openapi.alipay.com."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.gateway.models import GatewayAlipayTrade
from app.payments.channels.alipay import (
    AlipayChannel,
    AlipaySettings,
    extract_response_node,
    sign_params,
)
from app.payments.channels.base import ChannelRefused, TradeState
from app.payments.channels.crypto import (
    RsaKey,
    generate_rsa_keypair,
    load_private_key,
    rsa2_verify,
)
from app.payments.registry import alipay_settings
from app.timeutil import as_aware
from tests.conftest import TEST_BASE_URL, Clock
from tests.gateway.helpers import (
    GATEWAY_URL,
    NOTIFY_PATH,
    OUT_TRADE_NO,
    SUBJECT,
    charge,
    pay,
    post_signed,
    qr_path,
    receiver,
    sdk_client,
)


# --- precreate -------------------------------------------------------------------------


def test_precreate_returns_a_qr_code_on_the_public_base_url(
    channel: AlipayChannel, clock: Clock
) -> None:
    intent = channel.precreate(charge(clock))
    assert intent.out_trade_no == OUT_TRADE_NO
    assert re.fullmatch(r"http://cashier\.test/gateway/alipay/qr/[\w-]{16,}", intent.qr_code)


def test_precreating_again_with_the_same_amount_returns_the_same_qr_code(
    channel: AlipayChannel, clock: Clock
) -> None:
    first = channel.precreate(charge(clock))
    clock.advance(minutes=1)
    assert channel.precreate(charge(clock)).qr_code == first.qr_code


def test_precreating_again_with_another_amount_is_refused(
    channel: AlipayChannel, clock: Clock
) -> None:
    channel.precreate(charge(clock))
    with pytest.raises(ChannelRefused) as refused:
        channel.precreate(charge(clock, amount_fen=9451))
    assert refused.value.code == "ACQ.CONTEXT_INCONSISTENT"


# --- scan, query, pay ------------------------------------------------------------------


def test_query_before_the_qr_code_is_opened_finds_no_trade(
    channel: AlipayChannel, clock: Clock
) -> None:
    channel.precreate(charge(clock))
    assert channel.query(OUT_TRADE_NO).state is TradeState.NOT_FOUND


def test_opening_the_qr_page_creates_a_waiting_trade(
    channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    intent = channel.precreate(charge(clock))
    page = client.get(qr_path(intent.qr_code))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for expected in ("Alipay sandbox", "CourseCashier", SUBJECT, "¥94.50"):
        assert expected in text
    assert "Confirm" in text and "Cancel" in text
    status = channel.query(OUT_TRADE_NO)
    assert status.state is TradeState.PENDING
    assert status.amount_fen == 9450
    assert status.channel_trade_no and status.channel_trade_no.startswith("20261120")


def test_confirming_pays_the_trade(
    channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
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
    app: Flask,
    channel: AlipayChannel,
    client: FlaskClient,
    clock: Clock,
    gateway_public_key: RsaKey,
) -> None:
    pay(channel, client, clock)
    body = post_signed(app, "alipay.trade.query", {"out_trade_no": OUT_TRADE_NO}).text
    node_text, sign = extract_response_node(body, "alipay.trade.query")
    assert sign and rsa2_verify(node_text.encode(), sign, gateway_public_key)
    node = json.loads(node_text)
    assert node["trade_status"] == "TRADE_SUCCESS"
    assert node["total_amount"] == node["buyer_pay_amount"] == "94.50"
    assert node["buyer_logon_id"] == "lea***@example.com"
    assert node["send_pay_date"] == "2026-11-20 10:00:00"  # Beijing time of the clock
    assert re.fullmatch(r"2026112022001\d{9}", node["trade_no"])


def test_cancelling_leaves_the_trade_waiting(
    channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
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


def test_closing_a_paid_trade_is_refused(
    channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    pay(channel, client, clock)
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


def test_a_request_signed_with_another_key_is_refused_with_a_signed_answer(
    app: Flask, clock: Clock, gateway_public_key: RsaKey
) -> None:
    stranger_private, _ = generate_rsa_keypair()
    biz = {"out_trade_no": OUT_TRADE_NO}
    response = post_signed(app, "alipay.trade.query", biz, private_pem=stranger_private)
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
    session = app.extensions["cashier.http"]
    channel = AlipayChannel(settings, session, clock=lambda: as_aware(clock()))
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
    body = post_signed(app, "alipay.trade.pay", {"out_trade_no": OUT_TRADE_NO}).text
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


# --- against Alipay's published algorithm, independently of our signing code -----------


def test_alipays_sdk_is_understood_and_verifies_the_answer(app: Flask, keys_dir: Path) -> None:
    sdk = sdk_client(keys_dir)
    biz = {
        "out_trade_no": OUT_TRADE_NO,
        "total_amount": "94.50",
        "subject": SUBJECT,
        "timeout_express": "15m",
    }
    notify_url = TEST_BASE_URL + NOTIFY_PATH
    unsigned = sdk.build_body("alipay.trade.precreate", biz, notify_url=notify_url)
    signed_form = sdk.sign_data(unsigned)
    raw = app.extensions["cashier.http"].post(
        GATEWAY_URL,
        data=signed_form.encode("utf-8"),
        headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        timeout=5,
    ).text
    answer = sdk._verify_and_return_sync_response(raw, "alipay_trade_precreate_response")
    assert answer["code"] == "10000"
    assert answer["qr_code"].startswith(TEST_BASE_URL + "/gateway/alipay/qr/")


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
