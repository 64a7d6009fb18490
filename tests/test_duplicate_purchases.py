"""One purchase, one QR waiting: a learner cannot start paying twice for the same course
(a pending order for it is reused, an overlapping one refused), nor for a course they own.
Money that still arrives twice is refunded and shown to them (tests/test_reliability.py)."""
from __future__ import annotations

from sqlalchemy import func, select

from app.accounts.services import create_token, find_user
from app.checkout import services
from app.checkout.models import Order
from app.extensions import db
from app.payments.models import PaymentAttempt
from tests.helpers import attempt_of, checkout, login, make_coupon, make_course, make_learner, pay_at_emulator


def count(model_id) -> int:
    return db.session.scalar(select(func.count(model_id)))


def courses(app, prices: list[int]) -> list[int]:
    with app.app_context():
        ids = [make_course(price, slug=f"dup{index}") for index, price in enumerate(prices)]
        make_learner()
    return ids


def test_ordering_the_same_courses_again_reuses_the_waiting_order(app, client):
    first_course, second_course = courses(app, [10000, 5000])
    login(client)
    first = checkout(client, [first_course, second_course])
    again = checkout(client, [second_course, first_course], channel="wechat")
    assert again == first  # its pay page, where the learner can switch channel
    with app.app_context():
        assert count(Order.id) == 1 and count(PaymentAttempt.id) == 1


def test_an_order_overlapping_a_waiting_one_is_refused_and_names_it(app, client):
    first_course, second_course = courses(app, [10000, 5000])
    login(client)
    first = checkout(client, [first_course])
    client.post(f"/cart/add/{first_course}")
    client.post(f"/cart/add/{second_course}")
    refused = client.post("/cart/checkout", data={"channel": "alipay"}, follow_redirects=True)
    assert f"already in order {first}, waiting for payment" in refused.text
    with app.app_context():
        assert count(Order.id) == 1


def test_a_different_coupon_is_a_different_order_and_is_refused_while_the_first_waits(app, client):
    (course,) = courses(app, [10000])
    with app.app_context():
        make_coupon("TEN")
    login(client)
    first = checkout(client, [course])
    client.post(f"/cart/add/{course}")
    client.post("/cart/coupon", data={"code": "TEN"})
    refused = client.post("/cart/checkout", data={"channel": "alipay"}, follow_redirects=True)
    assert f"already in order {first}" in refused.text


def test_once_the_deadline_passed_the_course_can_be_ordered_again(app, client, clock):
    (course,) = courses(app, [10000])
    login(client)
    first = checkout(client, [course])
    clock.advance(minutes=16)
    second = checkout(client, [course])
    assert second != first


def api_headers(app) -> dict[str, str]:
    with app.app_context():
        token = create_token(find_user("ann@example.com").id, "phone")
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_an_owned_course_cannot_be_ordered(app, client):
    (course,) = courses(app, [10000])
    login(client)
    order_no = checkout(client, [course])
    with app.app_context():
        qr = attempt_of(order_no).qr_code
    pay_at_emulator(app, qr)
    refused = client.post("/api/v1/orders", json={"course_ids": [course], "channel": "alipay"},
                          headers=api_headers(app))
    assert refused.status_code == 409 and refused.json["code"] == "course_owned"
    with app.app_context():
        assert count(Order.id) == 1


def test_the_api_reuses_the_waiting_order_and_refuses_an_overlapping_one(app, client):
    course, other = courses(app, [10000, 5000])
    headers = api_headers(app)
    first = client.post("/api/v1/orders", json={"course_ids": [course], "channel": "alipay"}, headers=headers)
    second = client.post("/api/v1/orders", json={"course_ids": [course], "channel": "wechat"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json["order_no"] == second.json["order_no"]
    overlapping = client.post("/api/v1/orders", json={"course_ids": [course, other], "channel": "alipay"},
                              headers=headers)
    assert overlapping.status_code == 409 and overlapping.json["code"] == "pending_order"
    assert first.json["order_no"] in overlapping.json["message"]
    with app.app_context():
        assert count(Order.id) == 1


def test_an_order_number_drawn_twice_is_drawn_again(app, client, monkeypatch):
    """Order numbers are the second plus six random digits: a clash must not fail checkout."""
    first_course, second_course = courses(app, [10000, 5000])
    login(client)
    first = checkout(client, [first_course])
    drawn = iter([first, first, "CC20261120100000999999"])
    monkeypatch.setattr(services, "new_order_no", lambda: next(drawn))
    assert checkout(client, [second_course]) == "CC20261120100000999999"
