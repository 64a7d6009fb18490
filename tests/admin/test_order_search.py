"""The order list's search: a whole order number or e-mail address is looked up exactly
(by its unique index), anything else as a substring."""
from __future__ import annotations

from typing import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.checkout.models import Order
from app.extensions import db
from tests.admin.test_list_queries import place_orders


def order_numbers(app: Flask) -> dict[int, str]:
    with app.app_context():
        return dict(db.session.execute(select(Order.id, Order.order_no)).all())


def found(client: FlaskClient, search: str, numbers: dict[int, str]) -> set[str]:
    page = client.get("/admin/order/", query_string={"search": search})
    assert page.status_code == 200
    return {number for number in numbers.values() if number in page.text}


def test_whole_values_match_exactly_and_parts_as_substrings(
    app: Flask, client_as: Callable[[str], FlaskClient]
) -> None:
    admin = client_as("admin")
    ids = place_orders(app, 3, first=1)  # learner1@, learner2@, learner3@example.com
    place_orders(app, 1, first=11)  # learner11@example.com
    numbers = order_numbers(app)
    first, second, third = (numbers[order_id] for order_id in ids)
    eleventh = next(number for order_id, number in numbers.items() if order_id not in ids)

    assert found(admin, first, numbers) == {first}
    assert found(admin, first.lower(), numbers) == {first}  # typed in lower case
    # A whole address, in any case.
    assert found(admin, "learner1@example.com", numbers) == {first}
    assert found(admin, "LEARNER1@example.com", numbers) == {first}
    # Parts: of an e-mail, and of an order number (its last digits).
    assert found(admin, "learner1", numbers) == {first, eleventh}
    assert found(admin, "@example", numbers) == {first, second, third, eleventh}
    assert found(admin, second[-8:], numbers) == {second}
    # Every word must match.
    assert found(admin, f"learner {third}", numbers) == {third}
    assert found(admin, "nobody@example.com", numbers) == set()
