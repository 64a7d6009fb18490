"""The delivery state machine of a platform event. Pure: no database.

pending ──claim──▶ delivering ──deliver──▶ delivered
   ▲                   │ └──give_up──▶ failed   (the retry schedule is spent)
   └──retry / expire───┘                        (expire: a claim outlived its lease)
"""
from __future__ import annotations

from typing import Mapping

from app.payments.states import IllegalTransition

DELIVERY_STATUSES = ("pending", "delivering", "delivered", "failed")

DELIVERY: Mapping[tuple[str, str], str] = {
    ("pending", "claim"): "delivering",
    ("delivering", "deliver"): "delivered",
    ("delivering", "retry"): "pending",
    ("delivering", "give_up"): "failed",
    # The worker that claimed it died or lost its job: the sweep hands it back.
    ("delivering", "expire"): "pending",
}


def next_delivery_status(status: str, event: str) -> str:
    try:
        return DELIVERY[(status, event)]
    except KeyError:
        raise IllegalTransition("delivery", status, event) from None
