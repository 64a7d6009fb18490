"""`POST /notify/<channel>` takes only what the channel sends: its content type, within
the size limit; a replayed old callback changes nothing; every refusal is recorded and
counted for staff on the dashboard (app/payments/views.py, DESIGN.md §8, §10)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.accounts.services import create_user
from app.checkout.models import Order
from app.extensions import db
from app.payments.models import InboxNotification, RejectedNotification
from app.payments.services import record_rejection
from tests import test_wechat_notify, wechat_oracle
from tests.alipay_oracle import notification_fields, signed_body
from tests.earnings_helpers import refund_lines
from tests.helpers import login
from tests.test_notify import counts, place_pending_order
from tests.test_wechat_notify import order_status

ALIPAY_FORM = "application/x-www-form-urlencoded"
wechat_order = test_wechat_notify.wechat_order  # the fixture: a pending WeChat Pay order


@pytest.fixture
def pending_order(app, client) -> tuple[str, str]:
    return place_pending_order(app, client)


def rejections(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(RejectedNotification.reason).order_by(RejectedNotification.id)))


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain", "multipart/form-data; boundary=x",
                                          "application/x-www-form-urlencoded-evil"])
def test_an_alipay_callback_in_another_content_type_is_refused_and_recorded(app, client, pending_order,
                                                                            content_type):
    _, out_trade_no = pending_order
    body = signed_body(notification_fields(out_trade_no, 10000))  # correctly signed, even
    headers = {"Content-Type": content_type} if content_type else {}
    before = counts(app)
    response = client.post("/notify/alipay", data=body, headers=headers)
    assert (response.status_code, response.text) == (200, "failure")
    assert counts(app) == {**before, "rejected": before["rejected"] + 1}
    assert rejections(app)[-1].startswith("content type ")
    assert f"not {ALIPAY_FORM}" in rejections(app)[-1]


@pytest.mark.parametrize("content_type", [ALIPAY_FORM, ALIPAY_FORM + "; charset=utf-8", "Application/X-WWW-Form-Urlencoded"])
def test_an_alipay_callback_labelled_as_a_form_is_taken_whatever_its_charset_parameter(app, client, pending_order,
                                                                                      content_type):
    _, out_trade_no = pending_order
    response = client.post("/notify/alipay", data=signed_body(notification_fields(out_trade_no, 10000)),
                           headers={"Content-Type": content_type})
    assert response.text == "success"
    assert counts(app)["paid_orders"] == 1


@pytest.mark.parametrize(("content_type", "taken"), [
    ("application/json", True), ("application/json; charset=utf-8", True),
    (ALIPAY_FORM, False), ("text/plain", False), ("application/jsonp", False), (None, False),
])
def test_a_wechat_callback_is_taken_only_as_json(app, client, clock, wechat_order, content_type, taken):
    order_no, out_trade_no = wechat_order
    body, headers = wechat_oracle.callback(wechat_oracle.transaction(out_trade_no, 10000), at=clock())
    headers.pop("Content-Type")
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/notify/wechat", data=body, headers=headers)
    if taken:
        assert response.status_code == 204 and counts(app)["paid_orders"] == 1
    else:
        assert response.status_code == 400 and response.json["code"] == "FAIL"
        assert counts(app)["paid_orders"] == 0
        assert rejections(app) == [f"content type {(content_type or 'missing').split(';')[0]}, not application/json"]


@pytest.mark.parametrize("channel", ["alipay", "wechat"])
def test_a_body_over_the_limit_is_refused_and_recorded(app, client, channel):
    content_type = ALIPAY_FORM if channel == "alipay" else "application/json"
    response = client.post(f"/notify/{channel}", data=b"a" * (64 * 1024 + 1), headers={"Content-Type": content_type})
    expected = (200, "failure") if channel == "alipay" else (400, None)
    assert (response.status_code, None if channel == "wechat" else response.text) == expected
    assert rejections(app) == ["too large: over 65536 bytes"]


def test_an_old_alipay_notification_replayed_after_a_refund_changes_nothing(app, client, clock, pending_order):
    order_no, out_trade_no = pending_order
    body = signed_body(notification_fields(out_trade_no, 10000, notify_id="n-old"))
    assert client.post("/notify/alipay", data=body, headers={"Content-Type": ALIPAY_FORM}).text == "success"
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.order_no == order_no))
        support = create_user("support@example.com", "staff-password", "Sam", role="support")
        db.session.commit()
        refund_lines(order.id, order.user_id, None, [support])
    before = counts(app)
    clock.advance(days=30)
    # The same signed body, a month later: it verifies, and is the notification we have.
    replayed = client.post("/notify/alipay", data=body, headers={"Content-Type": ALIPAY_FORM})
    assert replayed.text == "success"  # so the channel (or whoever) stops sending it
    assert counts(app) == before
    with app.app_context():
        assert db.session.scalar(select(Order.status).where(Order.order_no == order_no)) == "refunded"
        assert db.session.scalar(select(InboxNotification.deliveries)) == 2


def test_an_old_wechat_callback_id_is_a_no_op_and_a_stale_copy_is_refused(app, client, clock, wechat_order):
    order_no, out_trade_no = wechat_order
    paid = wechat_oracle.transaction(out_trade_no, 10000)
    body, headers = wechat_oracle.callback(paid, at=clock(), event_id="EV-old")
    assert client.post("/notify/wechat", data=body, headers=headers).status_code == 204
    paid_state = counts(app)

    clock.advance(minutes=10)
    # The captured request, sent again: its signed timestamp is too old.
    stale = client.post("/notify/wechat", data=body, headers=headers)
    assert stale.status_code == 400
    assert counts(app) == {**paid_state, "rejected": 1}
    # WeChat itself re-signs a redelivery of the same callback id: it is the one we have.
    again, fresh_headers = wechat_oracle.callback(paid, at=clock(), event_id="EV-old")
    assert client.post("/notify/wechat", data=again, headers=fresh_headers).status_code == 204
    assert counts(app) == {**paid_state, "rejected": 1}
    assert order_status(app, order_no) == "paid"
    with app.app_context():
        assert db.session.scalar(select(InboxNotification.deliveries)) == 2


def test_the_dashboard_counts_rejected_callbacks_of_the_last_day_per_channel(app, clock):
    with app.app_context():
        create_user("ada@example.com", "staff-password-1", "Ada", role="admin")
        for channel, hours_ago in (("alipay", 1), ("alipay", 23), ("alipay", 25), ("wechat", 2)):
            clock.current -= timedelta(hours=hours_ago)
            record_rejection(channel, "SignatureError: bad sign", "x", "203.0.113.9")
            clock.current += timedelta(hours=hours_ago)
        db.session.commit()
    admin = app.test_client()
    login(admin, "ada@example.com", "staff-password-1")
    page = admin.get("/admin/").text
    assert 'id="rejected-alipay">2<' in page and 'id="rejected-wechat">1<' in page
    assert "/admin/rejected/" in page
