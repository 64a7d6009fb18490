"""Posting to the double-entry journal. Entries are append-only and always balance."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

from sqlalchemy import func, select

from app.checkout.models import Order, OrderLine
from app.extensions import db
from app.ledger import accounts
from app.ledger.models import JournalEntry, Posting
from app.money import apply_bps
from app.timeutil import now


class UnbalancedEntry(ValueError):
    pass


def post_entry(
    kind: str,
    source_key: str,
    legs: Iterable[tuple[str, int]],
    order_id: int | None = None,
    memo: str = "",
) -> int:
    """Append one balanced entry; legs on the same account are merged, zero legs dropped.

    ``source_key`` is unique: booking the same business event twice fails at the database.
    """
    merged: dict[str, int] = defaultdict(int)
    for account, amount_fen in legs:
        merged[account] += amount_fen
    postings = [(account, amount) for account, amount in merged.items() if amount != 0]
    if sum(amount for _, amount in postings) != 0:
        raise UnbalancedEntry(f"{source_key}: postings do not sum to zero")
    entry = JournalEntry(
        kind=kind, source_key=source_key, order_id=order_id, memo=memo, created_at=now()
    )
    entry.postings = [Posting(account=account, amount_fen=amount) for account, amount in postings]
    db.session.add(entry)
    db.session.flush()
    return entry.id


def line_legs(line: OrderLine) -> list[tuple[str, int]]:
    """What one line's sale credits: tax, the instructor's pending share (the line's rate
    applied to its amount net of tax) and platform revenue. Negative, as credits are."""
    net = line.amount_fen - line.tax_fen
    share = apply_bps(net, line.commission_bps)
    return [
        (accounts.TAX_PAYABLE, -line.tax_fen),
        (accounts.instructor_pending(line.instructor_id), -share),
        (accounts.PLATFORM_REVENUE, -(net - share)),
    ]


def sale_legs(order: Order, channel: str) -> list[tuple[str, int]]:
    """A paid order split into tax, instructor pending shares and platform revenue."""
    legs: list[tuple[str, int]] = [(accounts.channel(channel), order.total_fen)]
    for line in order.lines:
        legs.extend(line_legs(line))
    return legs


def post_refund(order: Order, lines: Sequence[OrderLine], channel: str, refund_id: int) -> int:
    """Reverse the refunded lines' legs exactly: refunding every line of an order brings
    each of its accounts back to zero, to the fen."""
    legs: list[tuple[str, int]] = [(accounts.channel(channel), -sum(line.amount_fen for line in lines))]
    for line in lines:
        legs.extend((account, -amount) for account, amount in line_legs(line))
    return post_entry(
        "refund", f"refund:{refund_id}", legs, order_id=order.id,
        memo=f"refund of {len(lines)} line(s) of order {order.order_no}",
    )


def post_sale(order: Order, channel: str, attempt_id: int) -> int:
    return post_entry(
        "payment",
        f"payment:{attempt_id}",
        sale_legs(order, channel),
        order_id=order.id,
        memo=f"order {order.order_no} paid by {channel}",
    )


def post_unallocated_receipt(order: Order, channel: str, attempt_id: int, amount_fen: int) -> int:
    """Book money that arrived for an order that cannot keep it (an orphan payment)."""
    return post_entry(
        "orphan_payment",
        f"payment:{attempt_id}",
        [(accounts.channel(channel), amount_fen), (accounts.UNALLOCATED_RECEIPTS, -amount_fen)],
        order_id=order.id,
        memo=f"payment order {order.order_no} cannot keep; to be refunded",
    )


def balance(account: str) -> int:
    return db.session.scalar(
        select(func.coalesce(func.sum(Posting.amount_fen), 0)).where(Posting.account == account)
    )


def unbalanced_entry_ids(entry_ids: Sequence[int] | None = None) -> list[int]:
    """Entries whose postings do not sum to zero: always empty unless something is wrong."""
    query = select(Posting.entry_id).group_by(Posting.entry_id).having(
        func.sum(Posting.amount_fen) != 0
    )
    if entry_ids is not None:
        query = query.where(Posting.entry_id.in_(entry_ids))
    return list(db.session.scalars(query))


def post_orphan_refund(order_id: int, channel: str, refund_id: int, amount_fen: int) -> int:
    """Money held as unallocated went back to its payer: both legs return to zero."""
    return post_entry(
        "orphan_refund",
        f"refund:{refund_id}",
        [(accounts.UNALLOCATED_RECEIPTS, amount_fen), (accounts.channel(channel), -amount_fen)],
        order_id=order_id,
        memo="system refund of an orphan payment",
    )
