"""Buying a membership as the boundary runs it: place the order (committed), then ask
the channel for the QR code. Commits; call it only from views."""
from __future__ import annotations

from app.checkout.checkout_flow import issue_placed_qr
from app.checkout.models import MEMBERSHIP_TITLE
from app.extensions import db
from app.membership.ordering import place_membership_order


def checkout_membership(user_id: int, plan_id: int, channel: str) -> int:
    """Returns the order id; an order placed earlier and still waiting is returned as it
    is, with a QR code asked for again if its first one never came."""
    placed = place_membership_order(user_id, plan_id, channel)
    db.session.commit()
    issue_placed_qr(placed, MEMBERSHIP_TITLE)
    return placed.order_id
