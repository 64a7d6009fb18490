"""Refunds on the emulated Alipay: ``alipay.trade.refund`` and
``alipay.trade.fastpay.refund.query``, hand-signed and checked against signed answers."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.payments.channels.alipay import AlipayChannel, extract_response_node
from app.payments.channels.crypto import RsaKey, rsa2_verify
from tests.conftest import Clock
from tests.gateway.helpers import (
    GATEWAY_URL,
    OUT_TRADE_NO,
    charge,
    pay,
    post_signed,
    qr_path,
    sdk_client,
)

REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"


def call(app: Flask, key: RsaKey, method: str, **biz: str) -> dict[str, Any]:
    """A signed request; the answer's node, after checking the emulator's signature."""
    body = post_signed(app, method, {"out_trade_no": OUT_TRADE_NO, **biz}).text
    node_text, sign = extract_response_node(body, method)
    assert sign and rsa2_verify(node_text.encode(), sign, key)
    node: dict[str, Any] = json.loads(node_text)
    return node


def query_status(app: Flask, key: RsaKey) -> str:
    return str(call(app, key, "alipay.trade.query")["trade_status"])


def test_a_partial_refund_answers_alipays_fields(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock,
    gateway_public_key: RsaKey,
) -> None:
    pay(channel, client, clock)
    clock.advance(minutes=3)
    node = call(app, gateway_public_key, REFUND, refund_amount="40.00", out_request_no="R1",
                refund_reason="课程退款")
    assert node["code"] == "10000"
    assert node["fund_change"] == "Y"
    assert node["refund_fee"] == node["send_back_fee"] == "40.00"
    assert node["gmt_refund_pay"] == "2026-11-20 10:03:00"
    assert node["buyer_logon_id"] == "lea***@example.com"
    assert node["out_trade_no"] == OUT_TRADE_NO and node["trade_no"]
    assert query_status(app, gateway_public_key) == "TRADE_SUCCESS"


def test_refunds_accumulate_and_a_full_refund_closes_the_trade(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock,
    gateway_public_key: RsaKey,
) -> None:
    path = pay(channel, client, clock)
    call(app, gateway_public_key, REFUND, refund_amount="40.00", out_request_no="R1")
    node = call(app, gateway_public_key, REFUND, refund_amount="54.50", out_request_no="R2")
    assert node["refund_fee"] == "94.50" and node["send_back_fee"] == "54.50"
    query = call(app, gateway_public_key, "alipay.trade.query")
    assert query["trade_status"] == "TRADE_CLOSED"
    assert query["total_amount"] == "94.50"
    assert "refunded in full" in client.get(path).get_data(as_text=True)
    more = call(app, gateway_public_key, REFUND, refund_amount="0.01", out_request_no="R3")
    assert (more["code"], more["sub_code"]) == ("40004", "ACQ.TRADE_STATUS_ERROR")


def test_repeating_an_out_request_no_moves_no_money(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock,
    gateway_public_key: RsaKey,
) -> None:
    pay(channel, client, clock)
    first = call(app, gateway_public_key, REFUND, refund_amount="94.50", out_request_no="R1")
    assert first["fund_change"] == "Y"
    clock.advance(minutes=1)
    again = call(app, gateway_public_key, REFUND, refund_amount="94.50", out_request_no="R1")
    assert again["code"] == "10000" and again["fund_change"] == "N"
    assert again["refund_fee"] == "94.50" and again["gmt_refund_pay"] == first["gmt_refund_pay"]
    other = call(app, gateway_public_key, REFUND, refund_amount="10.00", out_request_no="R1")
    assert other["sub_code"] == "ACQ.DISCORDANT_REPEAT_REQUEST"


@pytest.mark.parametrize(
    ("biz", "sub_code"),
    [
        ({"refund_amount": "94.51", "out_request_no": "R1"}, "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"),
        ({"refund_amount": "0.00", "out_request_no": "R1"}, "ACQ.INVALID_PARAMETER"),
        ({"refund_amount": "1.234", "out_request_no": "R1"}, "ACQ.INVALID_PARAMETER"),
        ({"refund_amount": "10.00"}, "ACQ.INVALID_PARAMETER"),  # partial needs out_request_no
    ],
)
def test_refusals_in_alipays_words(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock,
    gateway_public_key: RsaKey, biz: dict[str, str], sub_code: str,
) -> None:
    pay(channel, client, clock)
    node = call(app, gateway_public_key, REFUND, **biz)
    assert (node["code"], node["sub_code"]) == ("40004", sub_code)
    assert query_status(app, gateway_public_key) == "TRADE_SUCCESS"


def test_cumulative_refunds_may_not_pass_the_total(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock,
    gateway_public_key: RsaKey,
) -> None:
    pay(channel, client, clock)
    call(app, gateway_public_key, REFUND, refund_amount="90.00", out_request_no="R1")
    node = call(app, gateway_public_key, REFUND, refund_amount="4.51", out_request_no="R2")
    assert node["sub_code"] == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"


def test_a_full_refund_may_omit_out_request_no(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock,
    gateway_public_key: RsaKey,
) -> None:
    pay(channel, client, clock)
    assert call(app, gateway_public_key, REFUND, refund_amount="94.50")["fund_change"] == "Y"
    found = call(app, gateway_public_key, REFUND_QUERY, out_request_no=OUT_TRADE_NO)
    assert found["refund_amount"] == "94.50"


def test_unpaid_closed_and_unknown_trades_do_not_refund(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock,
    gateway_public_key: RsaKey,
) -> None:
    biz = {"refund_amount": "1.00", "out_request_no": "R1"}
    assert call(app, gateway_public_key, REFUND, **biz)["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    path = qr_path(channel.precreate(charge(clock)).qr_code)
    assert call(app, gateway_public_key, REFUND, **biz)["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    client.get(path)  # scanned: the trade exists, unpaid
    assert call(app, gateway_public_key, REFUND, **biz)["sub_code"] == "ACQ.TRADE_STATUS_ERROR"
    channel.close(OUT_TRADE_NO)
    assert call(app, gateway_public_key, REFUND, **biz)["sub_code"] == "ACQ.TRADE_STATUS_ERROR"


def test_refund_query_reports_a_done_refund(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock,
    gateway_public_key: RsaKey,
) -> None:
    pay(channel, client, clock)
    clock.advance(minutes=1)
    call(app, gateway_public_key, REFUND, refund_amount="40.00", out_request_no="R1")
    node = call(app, gateway_public_key, REFUND_QUERY, out_request_no="R1")
    assert node["code"] == "10000"
    assert node["refund_status"] == "REFUND_SUCCESS"
    assert (node["refund_amount"], node["total_amount"]) == ("40.00", "94.50")
    assert (node["out_request_no"], node["out_trade_no"]) == ("R1", OUT_TRADE_NO)
    assert node["gmt_refund_pay"] == "2026-11-20 10:01:00"


def test_refund_query_of_an_unknown_refund_is_a_bare_success(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock,
    gateway_public_key: RsaKey,
) -> None:
    pay(channel, client, clock)
    node = call(app, gateway_public_key, REFUND_QUERY, out_request_no="R404")
    assert node["code"] == "10000"
    assert "refund_status" not in node and "refund_amount" not in node


def test_alipays_sdk_refunds_and_verifies_the_answer(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock, keys_dir: Path
) -> None:
    pay(channel, client, clock)
    sdk = sdk_client(keys_dir)
    biz = {"out_trade_no": OUT_TRADE_NO, "refund_amount": "94.50", "out_request_no": "R1"}
    signed_form = sdk.sign_data(sdk.build_body(REFUND, biz))
    raw = app.extensions["cashier.http"].post(
        GATEWAY_URL,
        data=signed_form.encode("utf-8"),
        headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        timeout=5,
    ).text
    answer = sdk._verify_and_return_sync_response(raw, "alipay_trade_refund_response")
    assert answer["code"] == "10000" and answer["fund_change"] == "Y"
