"""The state machines of DESIGN.md §7 as transition tables. Pure: no database.

Every status change names an event; `next_status` says where the event leads from the
current status or raises `IllegalTransition`. The stores apply it by compare-and-set.
"""
from __future__ import annotations

from typing import Mapping


class IllegalTransition(Exception):
    def __init__(self, machine: str, status: str, event: str) -> None:
        super().__init__(f"{machine}: no transition {event!r} from {status!r}")
        self.machine = machine
        self.status = status
        self.event = event


ORDER: Mapping[tuple[str, str], str] = {
    ("pending", "pay"): "paid",
    ("pending", "expire"): "closed",
    ("pending", "cancel"): "closed",
    # Money that arrives after the order closed is still fulfilled when it can be
    # (DESIGN.md §7); the order then counts as paid.
    ("closed", "pay_late"): "paid",
    ("paid", "refund_part"): "partially_refunded",
    ("paid", "refund_rest"): "refunded",
    ("partially_refunded", "refund_part"): "partially_refunded",
    ("partially_refunded", "refund_rest"): "refunded",
}

ATTEMPT: Mapping[tuple[str, str], str] = {
    ("created", "succeed"): "succeeded",
    ("created", "close"): "closed",
    ("created", "fail"): "failed",
    # A closed QR can still be paid if the payer was faster than our close call; and
    # money the channel confirms is never refused by our own bookkeeping.
    ("closed", "succeed"): "succeeded",
    ("failed", "succeed"): "succeeded",
}

REFUND: Mapping[tuple[str, str], str] = {
    ("requested", "approve"): "approved",
    ("requested", "reject"): "rejected",
    # A large refund: the first approval waits for finance (a different person).
    ("requested", "approve_first"): "awaiting_finance",
    ("awaiting_finance", "approve"): "approved",
    ("awaiting_finance", "reject"): "rejected",
    ("approved", "start"): "processing",
    ("processing", "succeed"): "succeeded",
    ("processing", "fail"): "failed",
    ("failed", "retry"): "processing",
}

INBOX: Mapping[tuple[str, str], str] = {
    ("received", "process"): "processed",
    ("received", "fail"): "failed",
    # Staff replay a failed row once its cause is fixed; processing is idempotent, and a
    # replay that fails again only records the new outcome.
    ("failed", "process"): "processed",
    ("failed", "fail"): "failed",
}

PAYOUT: Mapping[tuple[str, str], str] = {
    ("pending", "pay"): "paid",
    # The bank returned the transfer: the money goes back to the instructor's available.
    ("pending", "fail"): "failed",
}

# One reconciliation run per channel and Beijing day (app/reconciliation): every try
# that gets the bills finishes it, even a rerun of a finished day; a try that cannot
# get them fails a day not yet finished, and leaves a finished day's findings alone.
RUN: Mapping[tuple[str, str], str] = {
    ("pending", "finish"): "finished",
    ("failed", "finish"): "finished",
    ("finished", "finish"): "finished",
    ("pending", "fail"): "failed",
    ("failed", "fail"): "failed",
    ("finished", "fail"): "finished",
}

# A difference between a bill and our records: staff resolve it; a later run that finds
# it again after the resolution reopens it.
DISCREPANCY: Mapping[tuple[str, str], str] = {
    ("open", "resolve"): "resolved",
    ("resolved", "reopen"): "open",
}

MACHINES: Mapping[str, Mapping[tuple[str, str], str]] = {
    "order": ORDER,
    "attempt": ATTEMPT,
    "refund": REFUND,
    "inbox": INBOX,
    "payout": PAYOUT,
    "run": RUN,
    "discrepancy": DISCREPANCY,
}

TERMINAL_ORDER_STATUSES = frozenset({"paid", "partially_refunded", "refunded", "closed"})


def next_status(machine: str, status: str, event: str) -> str:
    try:
        return MACHINES[machine][(status, event)]
    except KeyError:
        raise IllegalTransition(machine, status, event) from None


def sources(machine: str, event: str) -> frozenset[str]:
    """Every status from which ``event`` is allowed."""
    return frozenset(src for (src, ev) in MACHINES[machine] if ev == event)
