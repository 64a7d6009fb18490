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
# Top-up bonuses the platform gives away: a marketing expense (app/wallet).
WALLET_BONUS_EXPENSE = "platform:wallet_bonus"


def channel(name: str) -> str:
    return f"channel:{name}"


def instructor_pending(instructor_id: int) -> str:
    return f"instructor:{instructor_id}:pending"


def instructor_available(instructor_id: int) -> str:
    return f"instructor:{instructor_id}:available"


def instructor_accounts(instructor_id: int) -> tuple[str, str]:
    return instructor_pending(instructor_id), instructor_available(instructor_id)


def learner_wallet(user_id: int) -> str:
    """Money a learner paid in and has not spent: owed to them (a credit balance)."""
    return f"learner:{user_id}:wallet"


def learner_wallet_bonus(user_id: int) -> str:
    """Bonus a learner got with top-ups: spendable, never paid out in cash."""
    return f"learner:{user_id}:wallet_bonus"


def wallet_hold(order_id: int) -> str:
    """Balance set aside for an order paid partly by a channel, until it is paid or closes."""
    return f"order:{order_id}:wallet_hold"
