"""Receipts in the back office: a read-only list for the staff who see orders, found by
receipt number or order number, with nothing offered to change them."""
from __future__ import annotations

from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.admin.permissions import PERMISSIONS
from app.extensions import db
from app.money import display_yuan
from app.receipts.models import Receipt
from tests.admin.conftest import PaidOrder, buy

Clients = Callable[[str], FlaskClient]


def receipt_of(app: Flask, order: PaidOrder) -> tuple[int, str, str]:
    """(id, receipt number, key id) of the order's payment receipt."""
    with app.app_context():
        receipt = db.session.scalar(select(Receipt).where(Receipt.order_id == order.order_id,
                                                          Receipt.kind == "payment"))
        assert receipt is not None
        return receipt.id, receipt.receipt_no, receipt.key_id


def test_whoever_sees_the_orders_sees_the_receipts() -> None:
    assert PERMISSIONS["receipt"] == PERMISSIONS["order"]


@pytest.mark.parametrize("role", ["support", "finance", "admin"])
def test_staff_list_receipts_with_their_order_amount_in_yuan_and_key(
    app: Flask, paid_order: PaidOrder, client_as: Clients, role: str
) -> None:
    _, receipt_no, key_id = receipt_of(app, paid_order)
    listing = client_as(role).get("/admin/receipt/")
    assert listing.status_code == 200
    assert receipt_no in listing.text and key_id in listing.text
    assert f'href="/admin/order/{paid_order.order_id}/">{paid_order.order_no}</a>' in listing.text
    assert display_yuan(paid_order.total_fen) in listing.text
    assert "payment" in listing.text


@pytest.mark.parametrize("visitor", ["learner", "instructor"])
def test_learners_and_instructors_do_not_see_the_receipt_list(paid_order: PaidOrder, client_as: Clients,
                                                              visitor: str) -> None:
    assert client_as(visitor).get("/admin/receipt/").status_code == 403


def test_a_receipt_is_found_by_its_number_or_its_orders_number(
    app: Flask, paid_order: PaidOrder, client_as: Clients
) -> None:
    other = buy(app, client_as("learner"), (5000,))
    _, receipt_no, _ = receipt_of(app, paid_order)
    _, other_no, _ = receipt_of(app, other)
    support = client_as("support")
    for search in (receipt_no, receipt_no.lower(), paid_order.order_no, paid_order.order_no[-6:]):
        found = support.get("/admin/receipt/", query_string={"search": search})
        assert found.status_code == 200
        assert receipt_no in found.text and other_no not in found.text, search
    nothing = support.get("/admin/receipt/", query_string={"search": "P1999"})
    assert receipt_no not in nothing.text and other_no not in nothing.text


def test_no_one_is_offered_to_create_edit_or_delete_a_receipt(
    app: Flask, paid_order: PaidOrder, client_as: Clients
) -> None:
    receipt_id, receipt_no, _ = receipt_of(app, paid_order)
    admin = client_as("admin")
    listing = admin.get("/admin/receipt/").text
    details = admin.get(f"/admin/receipt/details/?id={receipt_id}")
    assert details.status_code == 200 and receipt_no in details.text
    for page in (listing, details.text):
        assert "/admin/receipt/new/" not in page
        assert "/admin/receipt/edit/" not in page
        assert "/admin/receipt/delete/" not in page
    assert admin.get(f"/admin/receipt/edit/?id={receipt_id}").status_code == 403
    assert admin.post("/admin/receipt/delete/", data={"id": receipt_id}).status_code == 403
    with app.app_context():
        assert db.session.get(Receipt, receipt_id).receipt_no == receipt_no
