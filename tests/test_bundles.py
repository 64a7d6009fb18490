"""Bundles: the price split over the courses by list price with largest remainder, one
order line per course at its part, coupons and refunds over those lines as over any,
and the refusals (a course owned already, a course already in the cart, a bundle staff
changed since it was put in the cart)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from app.accounts.services import create_user
from app.bundles.models import Bundle
from app.bundles.services import course_parts
from app.bundles.staff import BundleEditError, BundleValues, save_bundle
from app.cart import services as cart
from app.cart.models import CartItem
from app.catalog.models import Course
from app.checkout.models import Order, OrderLine
from app.checkout.services import CheckoutError, OrderRequest, place_order
from app.extensions import db
from app.ledger.services import unbalanced_entry_ids
from app.payments.models import PaymentAttempt, Refund
from app.payments.settlement import settle_payment
from tests.earnings_helpers import make_course_of, make_instructor, owed, refund_lines, sell
from tests.helpers import login, make_coupon, make_learner


@pytest.mark.parametrize(("price_fen", "list_prices", "parts"), [
    # ¥100 over ¥30 / ¥30 / ¥40: exact, no remainder.
    (10000, [3000, 3000, 4000], [3000, 3000, 4000]),
    # ¥100 over three equal courses: 3333.33 each; the spare fen goes to the first (ties: earlier).
    (10000, [3000, 3000, 3000], [3334, 3333, 3333]),
    # ¥100 over ¥99 / ¥199 / ¥249: 1809.87, 3638.03, 4552.10 -> the largest remainder (.87) gets the fen.
    (10000, [9900, 19900, 24900], [1810, 3638, 4552]),
    # ¥0.02 over three: two fen to the two earliest of equal remainders.
    (2, [100, 100, 100], [1, 1, 0]),
    # ¥399 over the demo's Python full-stack courses, 9900 / 19900 / 24900 fen.
    (39900, [9900, 19900, 24900], [7221, 14516, 18163]),
])
def test_a_bundle_price_is_split_by_list_price_with_largest_remainder(price_fen, list_prices, parts):
    assert course_parts(price_fen, list_prices) == parts
    assert sum(parts) == price_fen


def _catalog() -> dict[str, int]:
    lin = make_instructor("Lin", 7000)
    ada = make_instructor("Ada", 5000)
    ids = {
        "a": make_course_of(lin, 9900, "a"),
        "b": make_course_of(lin, 19900, "b"),
        "c": make_course_of(ada, 24900, "c"),
        "solo": make_course_of(ada, 5000, "solo"),
    }
    bundle = Bundle(slug="stack", title_zh="全栈套餐", title_en="Stack bundle", price_fen=10000)
    bundle.courses = [db.session.get(Course, ids[slug]) for slug in ("a", "b", "c")]
    db.session.add(bundle)
    db.session.commit()
    ids["bundle"] = bundle.id
    ids["lin"], ids["ada"] = lin, ada
    return ids


def _pay(order_id: int) -> None:
    attempt = db.session.scalar(select(PaymentAttempt).where(PaymentAttempt.order_id == order_id))
    assert settle_payment(attempt.id, f"T{attempt.id}", attempt.amount_fen, None).outcome == "paid"
    db.session.commit()


def _bundle_request(learner: int, ids: dict[str, int], coupon: str | None = None) -> OrderRequest:
    courses = (ids["a"], ids["b"], ids["c"])
    return OrderRequest(learner, courses, coupon, "alipay",
                        bundle_of=tuple((course_id, ids["bundle"]) for course_id in courses))


def test_checkout_makes_one_line_per_course_at_its_part_and_remembers_the_bundle(app):
    with app.app_context():
        ids = _catalog()
        learner = make_learner()
        order_id = place_order(_bundle_request(learner, ids))
        db.session.commit()
        order = db.session.get(Order, order_id)
        assert [(line.course_id, line.list_price_fen, line.amount_fen, line.bundle_id) for line in order.lines] == [
            (ids["a"], 1810, 1810, ids["bundle"]), (ids["b"], 3638, 3638, ids["bundle"]),
            (ids["c"], 4552, 4552, ids["bundle"])]
        assert order.total_fen == 10000
        _pay(order_id)
        # Each instructor's share is the rate of their course's part, as on any line.
        assert owed(ids["lin"]) == ((1810 * 7000 + 5000) // 10000 + (3638 * 7000 + 5000) // 10000, 0)
        assert owed(ids["ada"]) == ((4552 * 5000 + 5000) // 10000, 0)
        assert unbalanced_entry_ids() == []


def test_tax_applies_to_each_part_as_to_a_course(app):
    app.config["TAX_RATE"] = Decimal("0.05")
    with app.app_context():
        ids = _catalog()
        order_id = place_order(_bundle_request(make_learner(), ids))
        lines = db.session.get(Order, order_id).lines
        # 1810 × 1.05 = 1900.5 -> 1901; 3638 × 1.05 = 3819.9 -> 3820; 4552 × 1.05 = 4779.6 -> 4780.
        assert [line.amount_fen for line in lines] == [1901, 3820, 4780]
        assert db.session.get(Order, order_id).total_fen == 10501


def test_a_fixed_coupon_is_spread_over_the_bundle_parts(app):
    with app.app_context():
        ids = _catalog()
        make_coupon("FIVE", kind="fixed", amount_off_fen=1000)
        order_id = place_order(_bundle_request(make_learner(), ids, "FIVE"))
        order = db.session.get(Order, order_id)
        # 1000 over 1810 / 3638 / 4552 (of 10000): 181, 363.8, 455.2 -> 181, 364, 455.
        assert [line.discount_fen for line in order.lines] == [181, 364, 455]
        assert order.total_fen == 9000


def test_a_percent_coupon_takes_its_rate_off_each_part(app):
    with app.app_context():
        ids = _catalog()
        make_coupon("TEN")  # 10 %
        order = db.session.get(Order, place_order(_bundle_request(make_learner(), ids, "TEN")))
        assert [line.amount_fen for line in order.lines] == [1629, 3274, 4097]  # 90 %, half up
        assert order.total_fen == sum(line.amount_fen for line in order.lines)


def test_refunding_one_course_of_a_bundle_gives_back_its_part(app):
    with app.app_context():
        ids = _catalog()
        support = create_user("sam@example.com", "staff-password", "Sam", role="support")
        learner = make_learner()
        order_id = place_order(_bundle_request(learner, ids))
        db.session.commit()
        _pay(order_id)
        line_c = db.session.scalar(select(OrderLine).where(OrderLine.order_id == order_id,
                                                            OrderLine.course_id == ids["c"]))
        refund_id = refund_lines(order_id, learner, [line_c.id], [support])
        assert db.session.get(Refund, refund_id).amount_fen == 4552
        assert owed(ids["ada"]) == (0, 0)
        assert db.session.get(Order, order_id).status == "partially_refunded"


def test_a_bundle_with_a_course_the_learner_owns_is_refused_naming_it(app):
    with app.app_context():
        ids = _catalog()
        learner = make_learner()
        sell(learner, [ids["b"]])
        with pytest.raises(cart.CartError) as refused:
            cart.add_bundle(learner, ids["bundle"])
        assert refused.value.code == "bundle_course_owned"
        assert "Course b" in refused.value.message
        assert db.session.scalars(select(CartItem)).all() == []


def test_a_bundle_with_a_course_already_in_the_cart_is_refused(app):
    with app.app_context():
        ids = _catalog()
        learner = make_learner()
        cart.add_course(learner, ids["a"])
        with pytest.raises(cart.CartError) as refused:
            cart.add_bundle(learner, ids["bundle"])
        assert refused.value.code == "bundle_course_in_cart"


def test_the_cart_prices_the_bundle_and_removing_one_course_removes_the_bundle(app):
    with app.app_context():
        ids = _catalog()
        learner = make_learner()
        cart.add_bundle(learner, ids["bundle"])
        cart.add_course(learner, ids["solo"])
        view = cart.view_cart(learner)
        assert [line.list_price_fen for line in view.quote.lines] == [1810, 3638, 4552, 5000]
        assert [bundle.id if bundle else None for bundle in view.bundles] == [ids["bundle"]] * 3 + [None]
        cart.remove_course(learner, ids["b"])
        assert [item.course_id for item in cart.cart_for(learner).items] == [ids["solo"]]


def test_a_bundle_staff_changed_leaves_the_cart_with_a_notice_and_is_refused_at_checkout(app):
    with app.app_context():
        ids = _catalog()
        learner = make_learner()
        cart.add_bundle(learner, ids["bundle"])
        db.session.commit()
        bundle = db.session.get(Bundle, ids["bundle"])
        bundle.courses = bundle.courses + [db.session.get(Course, ids["solo"])]
        db.session.commit()
        with pytest.raises(CheckoutError) as refused:
            place_order(_bundle_request(learner, ids))
        assert refused.value.code == "bundle_changed"
        db.session.rollback()
        view = cart.view_cart(learner)
        assert view.courses == () and "has changed" in view.notice


def _second_bundle(ids: dict[str, int]) -> int:
    extra = make_course_of(ids["ada"], 3000, "extra")
    other = Bundle(slug="other", title_zh="其他套餐", title_en="Other bundle", price_fen=6000)
    other.courses = [db.session.get(Course, ids["solo"]), db.session.get(Course, extra)]
    db.session.add(other)
    db.session.commit()
    return other.id


def _change_first_bundle(ids: dict[str, int]) -> None:
    bundle = db.session.get(Bundle, ids["bundle"])
    bundle.courses = bundle.courses[:2]  # staff take course c out of it
    db.session.commit()


def test_a_changed_bundle_leaves_the_cart_and_the_other_bundles_stay(app):
    with app.app_context():
        ids = _catalog()
        other = _second_bundle(ids)
        learner = make_learner()
        cart.add_bundle(learner, ids["bundle"])
        cart.add_bundle(learner, other)
        db.session.commit()
        _change_first_bundle(ids)
        view = cart.view_cart(learner)
        assert "Stack bundle" in str(view.notice) and "Other bundle" not in str(view.notice)
        assert {item.bundle_id for item in db.session.scalars(select(CartItem))} == {other}


def test_a_coupon_entered_after_a_bundle_changed_is_answered_not_crashed(app, client):
    with app.app_context():
        ids = _catalog()
        make_coupon("TEN")
        learner = make_learner()
        cart.add_bundle(learner, ids["bundle"])
        db.session.commit()
        _change_first_bundle(ids)
    login(client)
    answered = client.post("/cart/coupon", data={"code": "TEN"})
    assert answered.status_code == 302
    page = client.get("/cart/").text
    assert "has changed" in page
    with app.app_context():
        assert db.session.scalars(select(CartItem)).all() == []


def test_the_web_flow_adds_the_bundle_and_checks_out_its_lines(app, client):
    with app.app_context():
        ids = _catalog()
        make_learner()
    page = client.get("/bundles/stack")
    assert page.status_code == 200
    assert "¥100.00" in page.text and "¥547.00" in page.text and "¥447.00" in page.text  # price, list, saving
    assert "¥18.10" in page.text and "¥36.38" in page.text and "¥45.52" in page.text
    login(client)
    added = client.post("/bundles/stack/cart")
    assert added.status_code == 302 and added.headers["Location"].endswith("/cart/")
    again = client.post("/bundles/stack/cart", follow_redirects=True)
    assert "already in your cart" in again.text
    checked_out = client.post("/cart/checkout", data={"channel": "alipay"})
    assert checked_out.status_code == 302
    with app.app_context():
        order = db.session.scalar(select(Order))
        assert {line.bundle_id for line in order.lines} == {ids["bundle"]} and order.total_fen == 10000


def test_an_unknown_or_unpublished_bundle_is_not_found(app, client):
    with app.app_context():
        ids = _catalog()
        make_learner()
        db.session.get(Bundle, ids["bundle"]).is_published = False
        db.session.commit()
    assert client.get("/bundles/stack").status_code == 404
    assert client.get("/bundles/nothing").status_code == 404
    login(client)
    assert client.post("/bundles/stack/cart").status_code == 404


@pytest.mark.parametrize(("values", "code"), [
    (dict(price_fen=54701), "price"),  # dearer than its courses one by one
    (dict(price_fen=0), "price"),
    (dict(course_slugs=("a",)), "courses"),
    (dict(course_slugs=("a", "a")), "duplicate"),
    (dict(course_slugs=("a", "nope")), "course_not_found"),
    (dict(slug="Bad Slug"), "slug"),
])
def test_staff_cannot_save_a_bundle_that_is_no_offer(app, values, code):
    with app.app_context():
        _catalog()
        staff = create_user("fay@example.com", "staff-password", "Fay", role="finance")
        db.session.commit()
        base = dict(slug="new", title_zh="新", title_en="New", price_fen=20000, course_slugs=("a", "b", "c"),
                    is_published=True)
        with pytest.raises(BundleEditError) as refused:
            save_bundle(None, BundleValues(**{**base, **values}), staff, "offer")
        assert refused.value.code == code
        db.session.rollback()
        bundle_id = save_bundle(None, BundleValues(**base), staff, "offer")
        assert [course.slug for course in db.session.get(Bundle, bundle_id).courses] == ["a", "b", "c"]
