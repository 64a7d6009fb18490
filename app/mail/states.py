"""The outbox message's state machine. Pure: no database.

``pending`` waits for its next attempt; ``sending`` is claimed by one worker until its
lease runs out (a worker that crashed mid-send is recognised by the lapsed lease and the
message is claimed again); ``failed`` took its last attempt, and staff may resend it.
"""
from __future__ import annotations

from typing import Mapping

from app.payments.states import IllegalTransition

MACHINE = "outbox"

OUTBOX: Mapping[tuple[str, str], str] = {
    ("pending", "claim"): "sending",
    # The claim's lease lapsed: its worker died or hung; another may take it over.
    ("sending", "reclaim"): "sending",
    ("sending", "send"): "sent",
    ("sending", "defer"): "pending",
    ("sending", "fail"): "failed",
    ("failed", "resend"): "pending",
}

STATUSES = ("pending", "sending", "sent", "failed")


def next_status(status: str, event: str) -> str:
    try:
        return OUTBOX[(status, event)]
    except KeyError:
        raise IllegalTransition(MACHINE, status, event) from None
