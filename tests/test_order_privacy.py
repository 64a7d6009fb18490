"""Someone else's order number opens nothing and changes nothing: every learner URL that
names an order answers as if the order did not exist, for another learner as for a made-up
number, and the order's owner still finds it untouched."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.checkout.models import Order
from app.extensions import db
from app.payments.models import PaymentAttempt, Refund
from tests.helpers import attempt_of, checkout, login, make_course, make_learner, pay_at_emulator

OTHER = ("bob@example.com", "bob-password-1")
URLS = (
    ("GET", "/orders/{}/pay"),
    ("GET", "/orders/{}/refund"),
    ("POST", "/orders/{}/refund"),
    ("POST", "/orders/{}/qr"),
    ("POST", "/orders/{}/channel"),
)


def snapshot() -> tuple:
    return (
        db.session.execute(select(Order.status, Order.total_fen)).all(),
        db.session.execute(select(PaymentAttempt.channel, PaymentAttempt.status)).all(),
        db.session.scalar(select(func.count(Refund.id))),
    )


@pytest.fixture(params=["pending", "paid"])
def order_of_ann(request, app, client) -> str:
    """Ann's order, waiting for payment (where a new QR or a switch of channel would
    act) or paid (where a refund would)."""
    with app.app_context():
        course_id = make_course(10000, slug="private")
        make_learner()
        make_learner(*OTHER)
    login(client)
    order_no = checkout(client, [course_id])
    if request.param == "paid":
        with app.app_context():
            pay_at_emulator(app, attempt_of(order_no).qr_code)
    client.post("/logout")
    return order_no


@pytest.mark.parametrize("method, url", URLS)
@pytest.mark.parametrize("whose", ["another learner's", "a made-up"])
def test_an_order_number_not_yours_is_not_found_and_changes_nothing(
    app, client, order_of_ann, method, url, whose
):
    order_no = order_of_ann if whose == "another learner's" else "CC20261120000000000000"
    with app.app_context():
        before = snapshot()
    login(client, *OTHER)
    data = {"reason": "mine now", "channel": "wechat", "lines": ["1"]}
    response = client.open(url.format(order_no), method=method, data=data)
    assert response.status_code == 404, response.text
    with app.app_context():
        assert snapshot() == before


@pytest.mark.parametrize("whose", ["another learner's", "a made-up"])
def test_the_status_poll_of_an_order_not_yours_is_a_json_404(app, client, order_of_ann, whose):
    order_no = order_of_ann if whose == "another learner's" else "CC20261120000000000000"
    login(client, *OTHER)
    response = client.get(f"/orders/{order_no}/status")
    assert response.status_code == 404
    assert response.json == {"code": "order_not_found", "message": "No such order."}
    assert order_of_ann not in client.get("/orders").text


def test_anonymous_visitors_are_asked_to_log_in(client, order_of_ann):
    assert client.get(f"/orders/{order_of_ann}/status").status_code == 401
    page = client.get(f"/orders/{order_of_ann}/pay")
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_the_owner_still_sees_the_order(request, client, order_of_ann):
    login(client)
    expected = request.node.callspec.params["order_of_ann"]
    assert client.get(f"/orders/{order_of_ann}/status").json["status"] == expected
