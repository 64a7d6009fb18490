"""The order's state as the pay page and the API show it."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.checkout.models import Order
from app.payments.states import TERMINAL_ORDER_STATUSES
from app.timeutil import as_aware, now

LATE_NOTIFY_GRACE = timedelta(minutes=5)


def order_status(order: Order) -> dict[str, Any]:
    """Status of an order; a pending order past its deadline is reported as expired.

    The expiry job closes it in the database after asking the channel; until then the
    page must not invite a payment it would then have to refund.
    """
    expired = order.status == "pending" and now() >= order.expires_at
    # A payment made just before the deadline may be notified just after it: the poller
    # keeps asking for a while before it gives up.
    given_up = expired and now() >= order.expires_at + LATE_NOTIFY_GRACE
    return {
        "order_no": order.order_no,
        "status": order.status,
        "paid": order.status in {"paid", "partially_refunded", "refunded"},
        "expired": expired,
        "terminal": order.status in TERMINAL_ORDER_STATUSES or given_up,
        "total_fen": order.total_fen,
        "expires_at": as_aware(order.expires_at).isoformat(),
        "seconds_left": max(0, int((order.expires_at - now()).total_seconds())),
    }
