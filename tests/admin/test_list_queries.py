"""A back-office list page costs the same statements for one row as for a page of rows:
the learner and order columns load their rows for the whole page in one query, not one
query a row (an N+1 that made the order list 53 statements a page)."""
from __future__ import annotations

from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.checkout.services import OrderRequest, place_order
from app.extensions import db
from tests.helpers import make_course, make_learner, recorded_statements


def place_orders(app: Flask, count: int, first: int) -> list[str]:
    """``count`` pending orders, each of another learner and course."""
    numbers = []
    with app.app_context():
        for number in range(first, first + count):
            learner_id = make_learner(f"learner{number}@example.com")
            course_id = make_course(10000 + number, slug=f"list-course-{number}")
            order_id = place_order(OrderRequest(user_id=learner_id, course_ids=(course_id,),
                                                coupon_code=None, channel="alipay"))
            db.session.commit()
            numbers.append(order_id)
    return numbers


def page_statements(app: Flask, client: FlaskClient, path: str, expected: str) -> int:
    client.get(path)  # first visit: anything cached per process is cached
    with recorded_statements(app) as seen:
        page = client.get(path)
    assert page.status_code == 200 and expected in page.text
    return len(seen)


@pytest.mark.parametrize("path, expected", [
    ("/admin/order/", "learner1@example.com"),  # the learner column
    ("/admin/attempt/", "CC"),  # the order column
])
def test_a_list_page_costs_the_same_for_one_row_and_for_many(
    app: Flask, client_as: Callable[[str], FlaskClient], path: str, expected: str
) -> None:
    admin = client_as("admin")
    place_orders(app, 1, first=1)
    one_row = page_statements(app, admin, path, expected)
    place_orders(app, 7, first=2)
    eight_rows = page_statements(app, admin, path, "learner8@example.com" if "order" in path else expected)
    assert eight_rows == one_row
    assert one_row <= 6, one_row
