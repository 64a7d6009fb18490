"""Account codes of the journal (DESIGN.md §9). Balances are sums of postings."""
from __future__ import annotations

TAX_PAYABLE = "tax:payable"
PLATFORM_REVENUE = "platform:revenue"
# Money received that no order can keep (an orphan payment): it waits here, visible,
# until its system refund takes it back out.
UNALLOCATED_RECEIPTS = "platform:unallocated_receipts"


def channel(name: str) -> str:
    return f"channel:{name}"


def instructor_pending(instructor_id: int) -> str:
    return f"instructor:{instructor_id}:pending"


def instructor_available(instructor_id: int) -> str:
    return f"instructor:{instructor_id}:available"
