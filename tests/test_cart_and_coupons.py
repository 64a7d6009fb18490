"""The cart, coupon rules and placing an order, through the pages."""
from __future__ import annotations

import html
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.cart.models import Cart, CartItem, Coupon, CouponRedemption
from app.catalog.models import Course, Enrollment
from app.checkout.models import Order
from app.earnings.rules import add_rule
from app.extensions import db
from app.payments.models import PaymentAttempt
from tests.helpers import checkout, login, make_coupon, make_course, make_learner


def page_text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def cart_page(client) -> str:
    response = client.get("/cart/")
    assert response.status_code == 200
    return page_text(response)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def cart_course_ids(user_id: int) -> list[int]:
    cart = db.session.scalar(select(Cart).where(Cart.user_id == user_id))
    return [item.course_id for item in cart.items] if cart else []


@pytest.fixture
def learner(app):
    with app.app_context():
        return make_learner()


def test_learner_adds_and_removes_a_course(app, client, learner):
    with app.app_context():
        course_id = make_course(10000, slug="python")
    login(client)

    added = client.post(f"/cart/add/{course_id}", follow_redirects=True)
    assert "Added to your cart." in page_text(added)
    assert "Course python" in cart_page(client)  # the English title on an English page
    with app.app_context():
        assert cart_course_ids(learner) == [course_id]

    client.post(f"/cart/remove/{course_id}")
    page = cart_page(client)
    assert "Your cart is empty." in page
    assert "Course python" not in page
    with app.app_context():
        assert cart_course_ids(learner) == []


def test_a_course_cannot_be_added_twice(app, client, learner):
    with app.app_context():
        course_id = make_course()
    login(client)
    client.post(f"/cart/add/{course_id}")
    again = client.post(f"/cart/add/{course_id}", follow_redirects=True)
    assert "This course is already in your cart." in page_text(again)
    with app.app_context():
        assert cart_course_ids(learner) == [course_id]
        assert count(CartItem) == 1


def test_an_owned_course_cannot_be_added(app, client, learner):
    with app.app_context():
        course_id = make_course()
        db.session.add(Enrollment(user_id=learner, course_id=course_id))
        db.session.commit()
    login(client)
    response = client.post(f"/cart/add/{course_id}", follow_redirects=True)
    assert "You already own this course." in page_text(response)
    with app.app_context():
        assert count(CartItem) == 0


def test_an_unknown_or_unpublished_course_cannot_be_added(app, client, learner):
    with app.app_context():
        course_id = make_course()
        db.session.get(Course, course_id).is_published = False
        db.session.commit()
    login(client)
    for target in (course_id, 9999):
        response = client.post(f"/cart/add/{target}", follow_redirects=True)
        assert "This course does not exist." in page_text(response)
    with app.app_context():
        assert count(CartItem) == 0


def _other_course_scope(coupon_id: int) -> None:
    other = db.session.get(Course, make_course(5000, slug="other"))
    coupon = db.session.get(Coupon, coupon_id)
    coupon.courses.append(other)
    db.session.commit()


COUPON_RULES = [
    # (id, coupon values, extra setup, message)
    ("inactive", {"is_active": False}, None, "This coupon is no longer active."),
    ("not_started", {"starts_at": timedelta(days=1)}, None, "This coupon is not valid yet."),
    ("expired", {"ends_at": timedelta(0)}, None, "This coupon has expired."),
    ("exhausted", {"max_redemptions": 3, "redeemed_count": 3}, None, "This coupon has been fully used."),
    ("minimum", {"min_amount_fen": 10001}, None, "This coupon needs a minimum of ¥100.01."),
    ("scope", {}, _other_course_scope, "This coupon does not apply to the courses in your cart."),
]


@pytest.mark.parametrize(
    ("values", "setup", "message"),
    [rule[1:] for rule in COUPON_RULES],
    ids=[rule[0] for rule in COUPON_RULES],
)
def test_coupon_rule_is_refused_with_its_message(app, client, clock, learner, values, setup, message):
    values = {
        key: clock.current + value if isinstance(value, timedelta) else value
        for key, value in values.items()
    }
    with app.app_context():
        course_id = make_course(10000)
        coupon_id = make_coupon("SAVE", **values)
        if setup:
            setup(coupon_id)
    login(client)
    client.post(f"/cart/add/{course_id}")

    response = client.post("/cart/coupon", data={"code": "save"}, follow_redirects=True)
    text = page_text(response)
    assert message in text
    assert "Coupon applied." not in text
    with app.app_context():
        assert db.session.scalar(select(Cart.coupon_code).where(Cart.user_id == learner)) is None


def test_unknown_coupon_code_is_refused(app, client, learner):
    with app.app_context():
        course_id = make_course()
    login(client)
    client.post(f"/cart/add/{course_id}")
    response = client.post("/cart/coupon", data={"code": "NOPE"}, follow_redirects=True)
    assert "This coupon code does not exist." in page_text(response)


def test_coupon_code_is_matched_case_insensitively_and_applied(app, client, learner):
    with app.app_context():
        course_id = make_course(10000)
        make_coupon("TEN")
    login(client)
    client.post(f"/cart/add/{course_id}")
    response = client.post("/cart/coupon", data={"code": "  ten "}, follow_redirects=True)
    text = page_text(response)
    assert "Coupon applied." in text
    assert '<dd id="discount">−¥10.00</dd>' in text


def test_minimum_amount_counts_only_eligible_lines(app, client, learner):
    with app.app_context():
        first = make_course(6000, slug="a")
        second = make_course(6000, slug="b")
        make_coupon("BIG", min_amount_fen=10000)
    login(client)
    client.post(f"/cart/add/{first}")
    refused = client.post("/cart/coupon", data={"code": "BIG"}, follow_redirects=True)
    assert "This coupon needs a minimum of ¥100.00." in page_text(refused)
    client.post(f"/cart/add/{second}")
    accepted = client.post("/cart/coupon", data={"code": "BIG"}, follow_redirects=True)
    assert "Coupon applied." in page_text(accepted)


def test_coupon_that_expires_while_in_the_cart_is_shown_and_left_out_of_the_price(app, client, clock, learner):
    with app.app_context():
        course_id = make_course(10000)
        make_coupon("TEN", ends_at=clock.current + timedelta(hours=1))
    login(client)
    client.post(f"/cart/add/{course_id}")
    applied = client.post("/cart/coupon", data={"code": "TEN"}, follow_redirects=True)
    assert '<dd id="total" class="price">¥90.00</dd>' in page_text(applied)

    clock.advance(hours=1)
    page = cart_page(client)
    assert "This coupon has expired." in page
    assert '<dd id="discount">−¥0.00</dd>' in page
    assert '<dd id="total" class="price">¥100.00</dd>' in page


def test_per_user_limit_refuses_a_second_use_by_the_same_learner(app, client, learner):
    with app.app_context():
        first = make_course(10000, slug="a")
        second = make_course(10000, slug="b")
        make_coupon("ONCE", per_user_limit=1)
    login(client)
    checkout(client, [first], coupon="ONCE")

    client.post(f"/cart/add/{second}")
    response = client.post("/cart/coupon", data={"code": "ONCE"}, follow_redirects=True)
    assert "You have already used this coupon." in page_text(response)

    # Another learner may still use it.
    with app.app_context():
        make_learner("bob@example.com")
    other = app.test_client()
    login(other, "bob@example.com")
    other.post(f"/cart/add/{second}")
    accepted = other.post("/cart/coupon", data={"code": "ONCE"}, follow_redirects=True)
    assert "Coupon applied." in page_text(accepted)


def test_cart_page_shows_subtotal_discount_tax_and_total(app, client, learner):
    app.config["TAX_RATE"] = Decimal("0.05")
    with app.app_context():
        first = make_course(10000, slug="a")
        second = make_course(5000, slug="b")
        make_coupon("TEN", percent_off_bps=1000)
    login(client)
    client.post(f"/cart/add/{first}")
    client.post(f"/cart/add/{second}")
    client.post("/cart/coupon", data={"code": "TEN"})

    page = cart_page(client)
    assert '<dd id="subtotal">¥150.00</dd>' in page
    assert '<dd id="discount">−¥15.00</dd>' in page
    assert '<dd id="tax">¥6.75</dd>' in page
    assert '<dd id="total" class="price">¥141.75</dd>' in page
    assert "¥94.50" in page  # the first line: the worked example
    assert "¥47.25" in page  # 5000 × 0.9 × 1.05


def test_checkout_with_an_exhausted_coupon_fails_and_creates_no_order(app, client, learner):
    with app.app_context():
        course_id = make_course(10000)
        coupon_id = make_coupon("LAST", max_redemptions=1)
    login(client)
    client.post(f"/cart/add/{course_id}")
    applied = client.post("/cart/coupon", data={"code": "LAST"}, follow_redirects=True)
    assert "Coupon applied." in page_text(applied)

    with app.app_context():  # someone else takes the last use meanwhile
        db.session.get(Coupon, coupon_id).redeemed_count = 1
        db.session.commit()

    response = client.post("/cart/checkout", data={"channel": "alipay"}, follow_redirects=True)
    assert '<p class="flash flash-error" role="status">This coupon has been fully used.</p>' in page_text(response)
    with app.app_context():
        assert count(Order) == 0
        assert count(PaymentAttempt) == 0
        assert count(CouponRedemption) == 0
        assert db.session.get(Coupon, coupon_id).redeemed_count == 1
        assert cart_course_ids(learner) == [course_id]  # the cart is kept


def test_coupon_redeemed_count_rises_exactly_once_per_order_placed(app, client, learner):
    with app.app_context():
        first = make_course(10000, slug="a")
        second = make_course(10000, slug="b")
        coupon_id = make_coupon("MULTI", per_user_limit=5, max_redemptions=10)
    login(client)

    first_order = checkout(client, [first], coupon="MULTI")
    client.get(f"/orders/{first_order}/pay")
    client.get(f"/orders/{first_order}/status")
    client.get("/cart/")
    with app.app_context():
        assert db.session.get(Coupon, coupon_id).redeemed_count == 1

    second_order = checkout(client, [second], coupon="MULTI")
    with app.app_context():
        assert db.session.get(Coupon, coupon_id).redeemed_count == 2
        redemptions = db.session.scalars(select(CouponRedemption).order_by(CouponRedemption.id)).all()
        orders = {order.id: order.order_no for order in db.session.scalars(select(Order))}
        assert [orders[r.order_id] for r in redemptions] == [first_order, second_order]
        assert all(r.user_id == learner and r.released_at is None for r in redemptions)


def test_checkout_without_a_coupon_redeems_nothing(app, client, learner):
    with app.app_context():
        course_id = make_course()
        coupon_id = make_coupon("UNUSED")
    login(client)
    checkout(client, [course_id])
    with app.app_context():
        assert db.session.get(Coupon, coupon_id).redeemed_count == 0
        assert count(CouponRedemption) == 0


def test_order_snapshots_each_line_and_expires_after_the_ttl(app, client, clock, learner):
    app.config["TAX_RATE"] = Decimal("0.05")
    app.config["ORDER_TTL_MINUTES"] = 20
    with app.app_context():
        first = make_course(10000, slug="a", commission_bps=7000)
        second = make_course(5000, slug="b", commission_bps=6000)
        add_rule(5500, clock.current, None, "course override", course_id=second)  # the course's own rate wins
        db.session.commit()
        make_coupon("TEN", percent_off_bps=1000)
    login(client)
    order_no = checkout(client, [first, second], coupon="TEN")

    with app.app_context():
        # Later changes to the catalog do not touch the order.
        for course in db.session.scalars(select(Course)):
            course.price_fen = 1
            course.title_zh = "changed"
            add_rule(1, clock.current, None, "later rule", course_id=course.id)
        db.session.commit()

        order = db.session.scalar(select(Order).where(Order.order_no == order_no))
        assert order.status == "pending"
        assert order.expires_at == clock.current + timedelta(minutes=20)
        assert (order.subtotal_fen, order.discount_fen, order.tax_fen, order.total_fen) == (15000, 1500, 675, 14175)
        assert order.coupon_code == "TEN"
        snapshot = [
            (line.course_id, line.title, line.commission_bps, line.list_price_fen,
             line.discount_fen, line.tax_fen, line.amount_fen)
            for line in order.lines
        ]
        assert snapshot == [
            (first, "课程 a", 7000, 10000, 1000, 450, 9450),
            (second, "课程 b", 5500, 5000, 500, 225, 4725),
        ]
        instructors = {course.id: course.instructor_id for course in db.session.scalars(select(Course))}
        assert [line.instructor_id for line in order.lines] == [instructors[first], instructors[second]]
        assert [[(share.weight, share.share_fen) for share in line.shares] for line in order.lines] == [
            [(1, 6300)], [(1, 2475)]]  # 70 % of 9000 net of tax; 55 % of 4500
        assert cart_course_ids(learner) == []  # the cart is emptied


def test_order_gets_a_payment_attempt_with_its_own_out_trade_no_and_qr_code(app, client, learner):
    with app.app_context():
        course_id = make_course(10000)
    login(client)
    order_no = checkout(client, [course_id])
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.order_no == order_no))
        attempts = db.session.scalars(select(PaymentAttempt).where(PaymentAttempt.order_id == order.id)).all()
        assert len(attempts) == 1
        (attempt,) = attempts
        assert attempt.out_trade_no and attempt.out_trade_no != order.order_no
        assert attempt.channel == "alipay"
        assert attempt.status == "created"
        assert attempt.amount_fen == order.total_fen == 10000
        assert attempt.expires_at == order.expires_at
        assert attempt.qr_code and attempt.qr_code.startswith("http")
    assert "<svg" in client.get(f"/orders/{order_no}/pay").get_data(as_text=True)
