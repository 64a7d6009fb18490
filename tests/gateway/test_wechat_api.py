"""The emulated WeChat Pay API v3: authentication, Native orders, query, close, refunds
and the sandbox page, driven by a merchant that signs with the independent wechatpayv3
package and checks every answer's signature with it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.gateway.wechat_models import GatewayWechatRefund, GatewayWechatTrade
from app.payments.channels.crypto import generate_rsa_keypair
from app.timeutil import as_aware
from tests.conftest import TEST_BASE_URL, Clock
from tests.gateway.wechat_helpers import (
    APP_ID,
    DESCRIPTION,
    MCH_ID,
    OUT_TRADE_NO,
    Merchant,
    callback_recorder,
    code_path,
    pay_wechat,
)


def trade_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(GatewayWechatTrade)) or 0


@pytest.fixture(autouse=True)
def notify_endpoint(app: Flask) -> None:
    callback_recorder(app, 204)


# --- authentication --------------------------------------------------------------------


def test_a_signed_native_order_answers_a_signed_code_url(merchant: Merchant) -> None:
    answer = merchant.native()
    assert answer.status_code == 200
    code_url = answer.json()["code_url"]
    assert re.fullmatch(r"http://cashier\.test/gateway/wechat/qr/[\w-]{16,}", code_url)
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    assert answer.headers["Request-ID"]
    assert merchant.verifies(answer)
    assert answer.text == '{"code_url":"' + answer.json()["code_url"] + '"}'  # compact JSON


def test_a_request_signed_with_another_key_is_refused_and_creates_nothing(
    app: Flask, clock: Clock, keys_dir: Path
) -> None:
    stranger, _ = generate_rsa_keypair()
    answer = Merchant(app, clock, keys_dir, private_pem=stranger).native()
    assert answer.status_code == 401
    assert answer.json()["code"] == "SIGN_ERROR"
    assert Merchant(app, clock, keys_dir).verifies(answer)  # refusals are signed too
    assert trade_count(app) == 0


def test_a_tampered_body_breaks_the_signature(app: Flask, merchant: Merchant) -> None:
    good = (
        f'{{"appid":"{APP_ID}","mchid":"{MCH_ID}","description":"d",'
        f'"out_trade_no":"{OUT_TRADE_NO}","notify_url":"http://merchant.test/n",'
        '"amount":{"total":9450}}'
    )
    authorization = merchant.authorization("POST", "/v3/pay/transactions/native", good)
    answer = app.extensions["cashier.http"].post(
        TEST_BASE_URL + "/gateway/wechat/v3/pay/transactions/native",
        data=good.replace("9450", "1").encode(),
        headers={"Authorization": authorization, "Content-Type": "application/json"},
        timeout=5,
    )
    assert answer.status_code == 401 and answer.json()["code"] == "SIGN_ERROR"
    assert trade_count(app) == 0


def test_the_wrong_certificate_serial_is_refused(
    app: Flask, clock: Clock, keys_dir: Path
) -> None:
    answer = Merchant(app, clock, keys_dir, serial_no="0123456789ABCDEF").native()
    assert answer.status_code == 401 and answer.json()["code"] == "SIGN_ERROR"
    assert trade_count(app) == 0


def test_another_mchid_in_the_header_is_refused(
    app: Flask, clock: Clock, keys_dir: Path
) -> None:
    answer = Merchant(app, clock, keys_dir, mch_id="1900000999").native()
    assert answer.status_code == 401 and answer.json()["code"] == "SIGN_ERROR"
    assert trade_count(app) == 0


def test_another_mchid_or_appid_in_the_body_is_refused(app: Flask, merchant: Merchant) -> None:
    answer = merchant.native(mchid="1900000999")
    assert answer.status_code == 400 and answer.json()["code"] == "MCH_NOT_EXISTS"
    answer = merchant.native(appid="wx9999999999999999")
    assert answer.status_code == 400 and answer.json()["code"] == "APPID_MCHID_NOT_MATCH"
    assert trade_count(app) == 0


def test_a_timestamp_more_than_five_minutes_off_is_refused(
    app: Flask, merchant: Merchant, clock: Clock
) -> None:
    now = int(as_aware(clock()).timestamp())
    path = f"/v3/pay/transactions/out-trade-no/{OUT_TRADE_NO}?mchid={MCH_ID}"
    stale = merchant.call("GET", path, timestamp=now - 301)
    assert stale.status_code == 401 and stale.json()["code"] == "SIGN_ERROR"
    ahead = merchant.call("GET", path, timestamp=now + 301)
    assert ahead.status_code == 401
    fresh = merchant.call("GET", path, timestamp=now - 299)
    assert fresh.status_code == 404 and fresh.json()["code"] == "ORDER_NOT_EXIST"


def test_the_signed_path_is_the_canonical_one_without_the_mount_prefix(
    merchant: Merchant,
) -> None:
    merchant.native()
    path = f"/v3/pay/transactions/out-trade-no/{OUT_TRADE_NO}?mchid={MCH_ID}"
    assert merchant.call("GET", path).status_code == 200
    mounted = merchant.call("GET", path, signed_path="/gateway/wechat" + path)
    assert mounted.status_code == 401
    # The query string is part of what is signed.
    no_query = merchant.call("GET", path, signed_path=path.split("?")[0])
    assert no_query.status_code == 401


def test_a_missing_authorization_header_is_refused(app: Flask) -> None:
    answer = app.extensions["cashier.http"].get(
        f"{TEST_BASE_URL}/gateway/wechat/v3/pay/transactions/out-trade-no/{OUT_TRADE_NO}"
        f"?mchid={MCH_ID}",
        timeout=5,
    )
    assert answer.status_code == 401 and answer.json()["code"] == "SIGN_ERROR"


def test_malformed_json_and_missing_fields_are_param_errors(app: Flask, merchant: Merchant) -> None:
    answer = merchant.call("POST", "/v3/pay/transactions/native", raw_body="{not json")
    assert answer.status_code == 400 and answer.json()["code"] == "PARAM_ERROR"
    assert merchant.verifies(answer)
    assert merchant.native(notify_url="").json()["code"] == "PARAM_ERROR"
    assert merchant.native(out_trade_no="W2026").json()["code"] == "PARAM_ERROR"  # < 6 chars
    assert merchant.native(out_trade_no="W2026 11 20").json()["code"] == "PARAM_ERROR"
    assert merchant.native(amount={"total": 0}).json()["code"] == "PARAM_ERROR"
    assert merchant.native(amount={"total": "9450"}).json()["code"] == "PARAM_ERROR"
    assert merchant.native(description="x" * 128).json()["code"] == "PARAM_ERROR"
    assert merchant.native(time_expire="2026-11-20 10:15:00").json()["code"] == "PARAM_ERROR"
    assert trade_count(app) == 0


# --- native and query ------------------------------------------------------------------


def test_a_new_order_is_notpay_and_reports_no_payment_fields(merchant: Merchant) -> None:
    merchant.native()
    answer = merchant.query()
    assert answer.status_code == 200 and merchant.verifies(answer)
    body = answer.json()
    assert body["trade_state"] == "NOTPAY"
    assert (body["appid"], body["mchid"], body["out_trade_no"]) == (APP_ID, MCH_ID, OUT_TRADE_NO)
    assert body["trade_type"] == "NATIVE"
    assert body["amount"]["total"] == 9450 and body["amount"]["currency"] == "CNY"
    for paid_only in ("transaction_id", "success_time", "payer"):
        assert paid_only not in body


def test_repeating_an_order_returns_the_same_code_url_unless_it_differs(
    merchant: Merchant, clock: Clock
) -> None:
    first = merchant.native().json()["code_url"]
    clock.advance(minutes=1)
    assert merchant.native().json()["code_url"] == first
    other = merchant.native(total=9451)
    assert other.status_code == 400 and other.json()["code"] == "INVALID_REQUEST"
    assert "不一致" in other.json()["message"]


def test_the_sandbox_page_shows_the_order_and_confirm_pays_it(
    merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    path = code_path(merchant.native())
    page = client.get(path).get_data(as_text=True)
    expected_texts = ("WeChat Pay sandbox", "CourseCashier", DESCRIPTION, "¥94.50", "Confirm")
    for expected in (*expected_texts, "Cancel"):
        assert expected in page
    assert "cancelled" in client.post(path + "/cancel").get_data(as_text=True)
    assert merchant.query().json()["trade_state"] == "NOTPAY"
    clock.advance(minutes=2)
    paid_page = client.post(path + "/confirm").get_data(as_text=True)
    assert "Payment successful" in paid_page and "Confirm" not in paid_page
    body = merchant.query().json()
    assert body["trade_state"] == "SUCCESS"
    assert re.fullmatch(r"420000123420261120\d{10}", body["transaction_id"])
    assert body["success_time"] == "2026-11-20T10:02:00+08:00"
    assert body["payer"]["openid"]
    assert body["amount"] == {
        "total": 9450, "payer_total": 9450, "currency": "CNY", "payer_currency": "CNY"
    }
    by_id = merchant.call(
        "GET", f"/v3/pay/transactions/id/{body['transaction_id']}?mchid={MCH_ID}"
    )
    assert by_id.status_code == 200 and by_id.json() == body


def test_ordering_again_after_payment_is_orderpaid(
    merchant: Merchant, client: FlaskClient
) -> None:
    pay_wechat(merchant, client)
    answer = merchant.native()
    assert answer.status_code == 400 and answer.json()["code"] == "ORDERPAID"


def test_unknown_orders_are_order_not_exist(merchant: Merchant) -> None:
    answer = merchant.query("W20269999999999")
    assert answer.status_code == 404
    assert answer.json() == {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
    assert merchant.verifies(answer)
    by_id = merchant.call(
        "GET", f"/v3/pay/transactions/id/4200001234202611200000000099?mchid={MCH_ID}"
    )
    assert by_id.status_code == 404
    assert merchant.close("W20269999999999").status_code == 404


def test_an_unpaid_order_closes_at_time_expire(
    merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    path = code_path(merchant.native(time_expire="2026-11-20T10:15:00+08:00"))
    clock.advance(minutes=14, seconds=59)
    assert merchant.query().json()["trade_state"] == "NOTPAY"
    clock.advance(seconds=1)
    assert merchant.query().json()["trade_state"] == "CLOSED"
    assert "expired" in client.get(path).get_data(as_text=True)
    assert client.post(path + "/confirm").status_code == 409
    assert merchant.query().json()["trade_state"] == "CLOSED"
    assert merchant.native(time_expire="2026-11-20T10:15:00+08:00").json()["code"] == "ORDER_CLOSED"


def test_without_time_expire_an_order_lives_two_hours(merchant: Merchant, clock: Clock) -> None:
    merchant.native()
    clock.advance(hours=1, minutes=59)
    assert merchant.query().json()["trade_state"] == "NOTPAY"
    clock.advance(minutes=1)
    assert merchant.query().json()["trade_state"] == "CLOSED"


# --- close -----------------------------------------------------------------------------


def test_close_answers_an_empty_signed_204_and_is_repeatable(
    merchant: Merchant, client: FlaskClient
) -> None:
    path = code_path(merchant.native())
    closed = merchant.close()
    assert closed.status_code == 204 and closed.content == b""
    assert merchant.verifies(closed)
    assert merchant.close().status_code == 204
    assert merchant.query().json()["trade_state"] == "CLOSED"
    page = client.get(path).get_data(as_text=True)
    assert "closed by the merchant" in page and "Confirm" not in page
    assert client.post(path + "/confirm").status_code == 409
    assert merchant.native().json()["code"] == "ORDER_CLOSED"


def test_closing_a_paid_order_is_refused(merchant: Merchant, client: FlaskClient) -> None:
    pay_wechat(merchant, client)
    answer = merchant.close()
    assert answer.status_code == 400
    assert answer.json() == {"code": "ORDERPAID", "message": "订单已支付"}
    assert merchant.query().json()["trade_state"] == "SUCCESS"


# --- refunds ---------------------------------------------------------------------------


def test_a_partial_then_full_refund_ends_in_trade_state_refund(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    pay_wechat(merchant, client)
    clock.advance(minutes=5)
    first = merchant.refund("R1", 4000)
    assert first.status_code == 200 and merchant.verifies(first)
    body = first.json()
    assert body["status"] == "SUCCESS"
    assert (body["out_refund_no"], body["out_trade_no"]) == ("R1", OUT_TRADE_NO)
    assert body["channel"] == "ORIGINAL"
    assert body["user_received_account"] == "支付用户零钱"
    assert body["success_time"] == body["create_time"] == "2026-11-20T10:05:00+08:00"
    assert body["amount"]["refund"] == body["amount"]["payer_refund"] == 4000
    assert body["amount"]["total"] == 9450 and body["amount"]["currency"] == "CNY"
    assert re.fullmatch(r"\d{29}", body["refund_id"])
    assert body["transaction_id"] == merchant.query().json()["transaction_id"]
    assert merchant.query().json()["trade_state"] == "SUCCESS"  # partly refunded

    rest = merchant.refund("R2", 5450)
    assert rest.status_code == 200
    assert merchant.query().json()["trade_state"] == "REFUND"
    looked_up = merchant.call("GET", "/v3/refund/domestic/refunds/R1")
    assert looked_up.status_code == 200 and looked_up.json() == body
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(GatewayWechatRefund)) == 2


def test_repeating_an_out_refund_no_returns_the_first_refund(
    merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    pay_wechat(merchant, client)
    first = merchant.refund("R1", 9450).json()
    clock.advance(minutes=1)
    again = merchant.refund("R1", 9450)
    assert again.status_code == 200 and again.json() == first
    other = merchant.refund("R1", 100)
    assert other.status_code == 400 and other.json()["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize(
    ("refund", "total", "code"),
    [(9451, 9450, "NOT_ENOUGH"), (100, 9451, "PARAM_ERROR"), (0, 9450, "PARAM_ERROR")],
)
def test_refunds_over_the_total_or_with_a_wrong_total_are_refused(
    merchant: Merchant, client: FlaskClient, refund: int, total: int, code: str
) -> None:
    pay_wechat(merchant, client)
    answer = merchant.refund("R1", refund, total=total)
    assert answer.status_code == 400 and answer.json()["code"] == code
    assert merchant.query().json()["trade_state"] == "SUCCESS"


def test_cumulative_refunds_may_not_pass_the_total(
    merchant: Merchant, client: FlaskClient
) -> None:
    pay_wechat(merchant, client)
    assert merchant.refund("R1", 9000).status_code == 200
    answer = merchant.refund("R2", 451)
    assert answer.status_code == 400 and answer.json()["code"] == "NOT_ENOUGH"
    assert merchant.call("GET", "/v3/refund/domestic/refunds/R2").status_code == 404


def test_refunding_an_unpaid_or_unknown_order_is_refused(merchant: Merchant) -> None:
    merchant.native()
    unpaid = merchant.refund("R1", 100)
    assert unpaid.status_code == 400 and unpaid.json()["code"] == "INVALID_REQUEST"
    unknown = merchant.refund("R2", 100, out_trade_no="W20269999999999")
    assert unknown.status_code == 404 and unknown.json()["code"] == "RESOURCE_NOT_EXISTS"
    missing = merchant.call("GET", "/v3/refund/domestic/refunds/R1")
    assert missing.status_code == 404 and missing.json()["code"] == "RESOURCE_NOT_EXISTS"
    assert merchant.verifies(missing)


def test_a_refund_can_name_the_transaction_id(merchant: Merchant, client: FlaskClient) -> None:
    pay_wechat(merchant, client)
    transaction_id = merchant.query().json()["transaction_id"]
    answer = merchant.call(
        "POST",
        "/v3/refund/domestic/refunds",
        {
            "transaction_id": transaction_id,
            "out_refund_no": "R1",
            "amount": {"refund": 100, "total": 9450, "currency": "CNY"},
        },
    )
    assert answer.status_code == 200 and answer.json()["out_trade_no"] == OUT_TRADE_NO
