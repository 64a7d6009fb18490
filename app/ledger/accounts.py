"""Account codes of the journal (DESIGN.md §9). Balances are sums of postings."""
from __future__ import annotations

TAX_PAYABLE = "tax:payable"
PLATFORM_REVENUE = "platform:revenue"
# What the channels keep of each payment (and give back, pro rata, on a refund).
CHANNEL_FEES = "platform:channel_fees"
# Corrections finance books in an instructor's favour (or against it).
EARNINGS_ADJUSTMENTS = "platform:earnings_adjustments"
# Payouts on their way to instructors' banks, and the bank they leave from.
PAYOUT_CLEARING = "payout:clearing"
PLATFORM_BANK = "platform:bank"
# Money received that no order can keep (an orphan payment): it waits here, visible,
# until its system refund takes it back out.
UNALLOCATED_RECEIPTS = "platform:unallocated_receipts"


def channel(name: str) -> str:
    return f"channel:{name}"


def instructor_pending(instructor_id: int) -> str:
    return f"instructor:{instructor_id}:pending"


def instructor_available(instructor_id: int) -> str:
    return f"instructor:{instructor_id}:available"


def instructor_accounts(instructor_id: int) -> tuple[str, str]:
    return instructor_pending(instructor_id), instructor_available(instructor_id)
