"""Buying a membership as the boundary runs it: place the order (committed), then ask
the channel for the QR code. Commits; call it only from views."""
from __future__ import annotations

from app.extensions import db
from app.membership.ordering import place_membership_order
from app.membership.services import QR_SUBJECT
from app.payments.precreate import issue_qr


def checkout_membership(user_id: int, plan_id: int, channel: str) -> int:
    """Returns the order id; an order placed earlier and still waiting is returned as it is."""
    placed = place_membership_order(user_id, plan_id, channel)
    db.session.commit()
    if placed.new_attempt_id is not None:
        issue_qr(placed.new_attempt_id, QR_SUBJECT)
    return placed.order_id
