"""Fault modes: the emulator misbehaving on purpose, per channel or per out_trade_no,
switched by ``faults.set_fault`` or by the operator page."""
from __future__ import annotations

import random
import re

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.gateway import faults
from app.payments.channels.alipay import AlipayChannel, extract_response_node
from app.payments.channels.base import TradeState
from tests.conftest import Clock
from tests.gateway.helpers import (
    GATEWAY_URL,
    OUT_TRADE_NO,
    charge,
    deliver,
    notifications,
    pay,
    post_signed,
    receiver,
)
from tests.gateway.wechat_helpers import (
    Merchant,
    callback_recorder,
    code_path,
    pay_wechat,
    wait_for_late_answers,
)
from tests.gateway.wechat_helpers import OUT_TRADE_NO as WECHAT_OUT_TRADE_NO


def set_fault(app: Flask, mode: str, channel: str = "*", out_trade_no: str | None = None,
              delay_seconds: int = 0) -> int:
    with app.app_context():
        fault_id = faults.set_fault(mode, channel, out_trade_no, delay_seconds)
        db.session.commit()
        return fault_id


def clear(app: Flask) -> None:
    with app.app_context():
        faults.clear_faults()
        db.session.commit()


# --- the fault table -------------------------------------------------------------------


def test_specific_faults_win_over_global_ones_and_both_apply(app: Flask) -> None:
    with app.app_context():
        faults.set_fault("delay_notify", "*", delay_seconds=10)
        faults.set_fault("delay_notify", "wechat", "W1", delay_seconds=30)
        faults.set_fault("duplicate_notify", "alipay")
        found = faults.faults_for("wechat", "W1")
        assert set(found) == {"delay_notify"} and found["delay_notify"].delay_seconds == 30
        assert faults.faults_for("wechat", "W2")["delay_notify"].delay_seconds == 10
        assert set(faults.faults_for("alipay", "W1")) == {"delay_notify", "duplicate_notify"}
        assert set(faults.faults_for("alipay", None)) == {"delay_notify", "duplicate_notify"}


def test_setting_a_fault_again_replaces_it_and_clearing_is_per_channel(app: Flask) -> None:
    with app.app_context():
        faults.set_fault("delay_notify", "alipay", delay_seconds=5)
        faults.set_fault("delay_notify", "alipay", delay_seconds=50)
        faults.set_fault("api_error", "wechat")
        assert len(faults.active_faults()) == 2
        assert faults.faults_for("alipay", None)["delay_notify"].delay_seconds == 50
        assert faults.clear_faults("alipay") == 1
        assert [fault.mode for fault in faults.active_faults()] == ["api_error"]
        assert faults.clear_faults() == 1


@pytest.mark.parametrize(
    ("mode", "channel", "delay"), [("no_such_mode", "*", 0), ("api_error", "paypal", 0),
                                   ("delay_notify", "*", -1)],
)
def test_unknown_modes_channels_and_negative_delays_are_refused(
    app: Flask, mode: str, channel: str, delay: int
) -> None:
    with app.app_context(), pytest.raises(ValueError):
        faults.set_fault(mode, channel, delay_seconds=delay)


# --- notification faults ---------------------------------------------------------------


def test_drop_notify_records_the_callback_but_never_sends_it(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    recorder = callback_recorder(app, 204)
    set_fault(app, "drop_notify", "wechat")
    pay_wechat(merchant, client)
    clock.advance(hours=1)
    assert deliver(app) == 0
    assert recorder.deliveries == []
    [record] = notifications(app)
    assert record.attempts == 0 and record.next_attempt_at is None
    assert record.last_answer == "dropped (fault mode)"
    page = client.get("/gateway/").get_data(as_text=True)
    assert "not sent" in page and "dropped (fault mode)" in page


def test_drop_notify_for_one_trade_spares_the_others(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    notify = receiver(app, "success")
    set_fault(app, "drop_notify", "alipay", "P20261120000002")
    pay(channel, client, clock)
    other = channel.precreate(charge(clock, out_trade_no="P20261120000002")).qr_code
    path = other.split("cashier.test", 1)[1]
    client.get(path)
    client.post(path + "/confirm")
    assert [form["out_trade_no"] for form in notify.forms()] == [OUT_TRADE_NO]


def test_delay_notify_holds_the_first_attempt_until_the_delay_passed(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    notify = receiver(app, "success")
    set_fault(app, "delay_notify", "alipay", delay_seconds=30)
    pay(channel, client, clock)
    assert notify.bodies == []  # not sent inline, even in sync mode
    clock.advance(seconds=29)
    assert deliver(app) == 0
    clock.advance(seconds=1)
    assert deliver(app) == 1
    assert len(notify.bodies) == 1
    [record] = notifications(app)
    assert record.delivered_at == clock()


def test_duplicate_notify_posts_each_attempt_twice_with_one_event_id(
    app: Flask, merchant: Merchant, client: FlaskClient
) -> None:
    recorder = callback_recorder(app, 204)
    set_fault(app, "duplicate_notify", "*", WECHAT_OUT_TRADE_NO)
    pay_wechat(merchant, client)
    events = recorder.events()
    assert len(events) == 2 and events[0]["id"] == events[1]["id"]
    [record] = notifications(app)
    assert record.attempts == 1 and record.delivered_at is not None


def test_shuffle_notify_holds_callbacks_and_sends_them_in_random_order(
    app: Flask, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    seed = 7
    app.config["GATEWAY_FAULT_SEED"] = seed
    recorder = callback_recorder(app, 204)
    set_fault(app, "shuffle_notify", "wechat")
    numbers = [f"W2026112000000{index}" for index in range(1, 7)]
    for out_trade_no in numbers:
        pay_wechat(merchant, client, out_trade_no)
        clock.advance(seconds=1)
    assert recorder.deliveries == []  # held, even in sync mode
    assert deliver(app) == len(numbers)
    sent = [merchant.decrypt(event["resource"])["out_trade_no"] for event in recorder.events()]
    expected = list(numbers)
    random.Random(seed).shuffle(expected)
    assert sent == expected and sent != numbers


# --- API faults ------------------------------------------------------------------------


def test_api_error_answers_503_without_processing(
    app: Flask, merchant: Merchant, channel: AlipayChannel, clock: Clock
) -> None:
    set_fault(app, "api_error")
    answer = merchant.native()
    assert answer.status_code == 503 and "Wechatpay-Signature" not in answer.headers
    alipay = post_signed(app, "alipay.trade.precreate", {"out_trade_no": OUT_TRADE_NO,
                                                         "total_amount": "94.50", "subject": "s"})
    assert alipay.status_code == 503
    clear(app)
    assert merchant.query().json()["code"] == "ORDER_NOT_EXIST"
    assert channel.query(OUT_TRADE_NO).state is TradeState.NOT_FOUND


def test_api_error_for_one_out_trade_no_spares_the_others(app: Flask, merchant: Merchant) -> None:
    set_fault(app, "api_error", "wechat", WECHAT_OUT_TRADE_NO)
    assert merchant.native().status_code == 503
    assert merchant.query().status_code == 503  # matched by the path's out_trade_no
    assert merchant.native("W20261120000002").status_code == 200


def test_api_unknown_processes_the_request_but_answers_busy(
    app: Flask, merchant: Merchant, channel: AlipayChannel, client: FlaskClient, clock: Clock,
) -> None:
    callback_recorder(app, 204)
    set_fault(app, "api_unknown", "wechat")
    answer = merchant.native()
    assert answer.status_code == 500
    assert answer.json() == {"code": "SYSTEM_ERROR", "message": "系统错误"}
    assert merchant.verifies(answer)
    clear(app)
    assert merchant.query().json()["trade_state"] == "NOTPAY"

    pay(channel, client, clock)
    set_fault(app, "api_unknown", "alipay", OUT_TRADE_NO)
    biz = {"out_trade_no": OUT_TRADE_NO, "refund_amount": "94.50", "out_request_no": "R1"}
    body = post_signed(app, "alipay.trade.refund", biz).text
    node = extract_response_node(body, "alipay.trade.refund")[0]
    assert '"code":"20000"' in node and '"sub_code":"ACQ.SYSTEM_ERROR"' in node
    clear(app)
    assert channel.query(OUT_TRADE_NO).state is TradeState.CLOSED  # refunded in full


def test_api_timeout_commits_then_answers_too_late(
    app: Flask, merchant: Merchant, clock: Clock
) -> None:
    app.config["GATEWAY_FAULT_TIMEOUT_SECONDS"] = 0.6
    merchant.timeout = 0.2
    set_fault(app, "api_timeout", "*")
    try:
        with pytest.raises(requests.exceptions.ReadTimeout):
            merchant.native()
        with pytest.raises(requests.exceptions.ReadTimeout):
            app.extensions["cashier.http"].post(
                GATEWAY_URL, data={"method": "alipay.trade.query"}, timeout=0.2
            )
    finally:
        wait_for_late_answers()
    clear(app)
    merchant.timeout = 5
    assert merchant.query().json()["trade_state"] == "NOTPAY"


def test_api_timeout_answers_normally_to_a_patient_client(app: Flask, merchant: Merchant) -> None:
    app.config["GATEWAY_FAULT_TIMEOUT_SECONDS"] = 0.05
    set_fault(app, "api_timeout", "wechat")
    answer = merchant.native()
    assert answer.status_code == 200 and merchant.verifies(answer)


# --- the operator page -----------------------------------------------------------------


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


def test_the_operator_page_switches_a_fault_on_and_off(
    app: Flask, client: FlaskClient, merchant: Merchant
) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    page = client.get("/gateway/").get_data(as_text=True)
    assert "No fault mode is on" in page
    token = csrf_token(page)
    form = {"mode": "api_error", "channel": "wechat", "out_trade_no": "", "delay_seconds": "0"}
    assert client.post("/gateway/faults", data=form).status_code == 400  # no CSRF token
    with app.app_context():
        assert faults.active_faults() == []

    switched = client.post("/gateway/faults", data={**form, "csrf_token": token},
                           follow_redirects=True)
    text = switched.get_data(as_text=True)
    assert "Fault api_error is on for wechat / every trade." in text
    assert merchant.native().status_code == 503

    with app.app_context():
        [fault] = faults.active_faults()
        fault_id = fault.id
    cleared = client.post(f"/gateway/faults/{fault_id}/clear", data={"csrf_token": token},
                          follow_redirects=True).get_data(as_text=True)
    assert "Fault cleared." in cleared and "No fault mode is on" in cleared
    assert merchant.native().status_code == 200


def test_the_operator_page_refuses_a_negative_delay_and_clears_all(
    app: Flask, client: FlaskClient
) -> None:
    bad = {"mode": "delay_notify", "channel": "*", "out_trade_no": "", "delay_seconds": "-5"}
    assert client.post("/gateway/faults", data=bad).status_code == 400
    good = {**bad, "delay_seconds": "30", "out_trade_no": "P20261120000001"}
    client.post("/gateway/faults", data=good)
    client.post("/gateway/faults", data={**good, "mode": "api_error", "channel": "alipay"})
    page = client.get("/gateway/").get_data(as_text=True)
    assert "delay_notify" in page and "P20261120000001" in page
    text = client.post("/gateway/faults/clear", follow_redirects=True).get_data(as_text=True)
    assert "All faults cleared (2)." in text


def test_confirm_on_the_wechat_page_is_csrf_protected(
    app: Flask, client: FlaskClient, merchant: Merchant
) -> None:
    callback_recorder(app, 204)
    app.config["WTF_CSRF_ENABLED"] = True
    path = code_path(merchant.native())
    page = client.get(path).get_data(as_text=True)
    assert client.post(path + "/confirm").status_code == 400
    assert merchant.query().json()["trade_state"] == "NOTPAY"
    assert client.post(path + "/confirm", data={"csrf_token": csrf_token(page)}).status_code == 200
    assert merchant.query().json()["trade_state"] == "SUCCESS"
