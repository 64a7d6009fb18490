"""`POST /notify/wechat`: callbacks built by an independent implementation are accepted;
a tampered, mis-keyed, stale, foreign or wrong-amount one is refused and changes nothing."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from wechatpayv3 import WeChatPay, WeChatPayType

from app import create_app
from app.accounts.services import create_user
from app.checkout.models import Order
from app.checkout.services import OrderRequest, place_order
from app.config import (
    EMULATOR_WECHAT_APP_ID,
    EMULATOR_WECHAT_CERT_SERIAL,
    EMULATOR_WECHAT_MCH_ID,
    EMULATOR_WECHAT_PUBLIC_KEY_ID,
)
from app.extensions import db
from app.ledger.services import unbalanced_entry_ids
from app.payments.models import InboxNotification, PaymentAttempt, RejectedNotification
from tests import wechat_oracle
from tests.conftest import base_config
from tests.helpers import attempt_of, make_course, make_learner
from tests.test_notify import counts


@pytest.fixture
def wechat_order(app) -> tuple[str, str]:
    """A pending ¥100.00 order to be paid with WeChat Pay: (order_no, out_trade_no)."""
    with app.app_context():
        course_id = make_course(10000)
        user_id = make_learner()
        order_id = place_order(OrderRequest(user_id, (course_id,), None, "wechat"))
        db.session.commit()
        order_no = db.session.get(Order, order_id).order_no
        return order_no, attempt_of(order_no).out_trade_no


def post(client, body: bytes, headers: dict[str, str]):
    return client.post("/notify/wechat", data=body, headers=headers)


def order_status(app, order_no: str) -> str:
    with app.app_context():
        return db.session.scalar(select(Order.status).where(Order.order_no == order_no))


def test_the_oracle_itself_accepts_the_callbacks_these_tests_build(clock):
    """The test fixture speaks WeChat's protocol: wechatpayv3 verifies and decrypts it."""
    oracle = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=EMULATOR_WECHAT_MCH_ID,
        private_key=(wechat_oracle.KEYS / "wechat_mch_private.pem").read_text(),
        cert_serial_no=EMULATOR_WECHAT_CERT_SERIAL,
        apiv3_key=wechat_oracle.APIV3_KEY,
        appid=EMULATOR_WECHAT_APP_ID,
        public_key=(wechat_oracle.KEYS / "wechat_platform_public.pem").read_text(),
        public_key_id=EMULATOR_WECHAT_PUBLIC_KEY_ID,
    )
    body, headers = wechat_oracle.callback(
        wechat_oracle.transaction("CC1P01", 10000), at=datetime.now(timezone.utc)
    )
    decoded = oracle.callback(headers, body.decode())
    assert decoded["resource"]["out_trade_no"] == "CC1P01"


def test_an_independently_built_callback_pays_the_order(app, client, clock, wechat_order):
    order_no, out_trade_no = wechat_order
    body, headers = wechat_oracle.callback(
        wechat_oracle.transaction(out_trade_no, 10000), at=clock()
    )
    response = post(client, body, headers)
    assert response.status_code == 204
    assert response.data == b""
    assert order_status(app, order_no) == "paid"
    with app.app_context():
        attempt = attempt_of(order_no)
        assert attempt.status == "succeeded"
        assert attempt.channel_trade_no == "4200002026112300000000000001"
        assert unbalanced_entry_ids() == []


def test_a_redelivered_callback_is_one_inbox_row_and_one_payment(app, client, clock, wechat_order):
    order_no, out_trade_no = wechat_order
    paid = wechat_oracle.transaction(out_trade_no, 10000)
    for seconds in (0, 15, 30):
        # WeChat re-signs each delivery (fresh timestamp and nonce); the event id stays.
        body, headers = wechat_oracle.callback(paid, at=clock() + timedelta(seconds=seconds))
        assert post(client, body, headers).status_code == 204
    after = counts(app)
    assert (after["inbox"], after["succeeded"], after["entries"]) == (1, 1, 1)
    with app.app_context():
        assert db.session.scalar(select(InboxNotification.deliveries)) == 3


REFUSALS = {
    "tampered ciphertext": lambda tx, at: wechat_oracle.callback(tx, at=at, tamper_ciphertext=True),
    "wrong APIv3 key": lambda tx, at: wechat_oracle.callback(tx, at=at, apiv3_key="W" * 32),
    "stale timestamp": lambda tx, at: wechat_oracle.callback(tx, at=at - timedelta(minutes=6)),
    "timestamp from the future": lambda tx, at: wechat_oracle.callback(tx, at=at + timedelta(minutes=6)),
    "another merchant": lambda tx, at: wechat_oracle.callback({**tx, "mchid": "1900000999"}, at=at),
    "another app": lambda tx, at: wechat_oracle.callback({**tx, "appid": "wx9999999999999999"}, at=at),
    "a different amount": lambda tx, at: wechat_oracle.callback(
        {**tx, "amount": {**tx["amount"], "total": 1}}, at=at
    ),
    "another currency": lambda tx, at: wechat_oracle.callback(
        {**tx, "amount": {**tx["amount"], "currency": "USD"}}, at=at
    ),
}


@pytest.mark.parametrize("forgery", list(REFUSALS), ids=list(REFUSALS))
def test_a_bad_callback_is_refused_and_changes_nothing(app, client, clock, wechat_order, forgery):
    order_no, out_trade_no = wechat_order
    before = counts(app)
    body, headers = REFUSALS[forgery](wechat_oracle.transaction(out_trade_no, 10000), clock())
    response = post(client, body, headers)
    assert 400 <= response.status_code < 500
    assert response.json["code"] == "FAIL"
    assert response.json["message"]
    after = counts(app)
    assert after == {**before, "rejected": before["rejected"] + 1}
    assert order_status(app, order_no) == "pending"


def test_a_body_changed_after_signing_is_refused(app, client, clock, wechat_order):
    order_no, out_trade_no = wechat_order
    body, headers = wechat_oracle.callback(wechat_oracle.transaction(out_trade_no, 10000), at=clock())
    event = json.loads(body)
    event["id"] = "EV-forged"
    response = post(client, json.dumps(event, ensure_ascii=False).encode(), headers)
    assert response.status_code == 400
    assert order_status(app, order_no) == "pending"
    with app.app_context():
        reason = db.session.scalar(select(RejectedNotification.reason))
        assert "signature" in reason


def test_a_callback_signed_with_an_unknown_platform_key_is_refused(app, client, clock, wechat_order):
    _, out_trade_no = wechat_order
    body, _ = wechat_oracle.callback(wechat_oracle.transaction(out_trade_no, 10000), at=clock())
    headers = wechat_oracle.signed_headers(body.decode(), clock(), serial="PUB_KEY_ID_OTHER")
    assert post(client, body, headers).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(PaymentAttempt.id)).where(
            PaymentAttempt.status == "succeeded")) == 0


def test_an_unsigned_callback_is_refused(app, client, wechat_order):
    _, out_trade_no = wechat_order
    body = json.dumps({"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource": {}}).encode()
    response = post(client, body, {"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json == {"code": "FAIL", "message": response.json["message"]}


def test_a_callback_for_a_channel_configured_nowhere_is_not_found(database_url, keys_dir, tmp_path):
    """Alipay only, no WeChat keys at all: a stranger's POST is a 404, not a 500."""
    alipay_only = tmp_path / "keys"
    alipay_only.mkdir()
    for path in keys_dir.glob("alipay_*"):
        (alipay_only / path.name).write_text(path.read_text())
    config = base_config(database_url, alipay_only, tmp_path) | {
        "PAYMENT_GATEWAY_EMULATOR": False,
        "PAYMENT_CHANNELS": ("alipay",),
        "ALIPAY_APP_ID": "2021000000000009",
        "ALIPAY_SELLER_ID": "2088000000000009",
        "ALIPAY_GATEWAY_URL": "https://openapi.alipay.example/gateway.do",
    }
    client = create_app(config).test_client()
    response = client.post("/notify/wechat", data=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 404


def test_a_refund_callback_is_accepted_for_our_refund_and_refused_for_another(app, client, clock):
    from app.payments import refund_workflow
    from app.payments.models import Refund
    from tests.helpers import checkout, login, pay_at_emulator

    with app.app_context():
        course_id = make_course(10000)
        make_learner()
        support = create_user("support@example.com", "staff-password", "Sam", role="support")
        db.session.commit()
    login(client)
    order_no = checkout(client, [course_id], channel="wechat")
    with app.app_context():
        pay_at_emulator(app, attempt_of(order_no).qr_code)
        order = db.session.scalar(select(Order).where(Order.order_no == order_no))
        refund_id = refund_workflow.request_refund(order.id, order.user_id, None, "no")
        refund_workflow.approve_refund(refund_id, support, "ok")
        db.session.commit()
        refund = db.session.get(Refund, refund_id)
        numbers = (refund.attempt.out_trade_no, refund.refund_no, refund.amount_fen)

    body, headers = wechat_oracle.refund_callback(*numbers, at=clock())
    assert post(client, body, headers).status_code == 204
    forged = wechat_oracle.refund_callback(numbers[0], "CC-OTHER-R01", numbers[2], at=clock())
    response = post(client, *forged)
    assert response.status_code == 400 and response.json["code"] == "FAIL"
    wrong_amount = wechat_oracle.refund_callback(numbers[0], numbers[1], 1, at=clock())
    assert post(client, *wrong_amount).status_code == 400
