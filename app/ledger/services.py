"""Posting to the double-entry journal. Entries are append-only and always balance."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

from sqlalchemy import func, insert, select

from app.checkout.models import Order, OrderLine, channel_due_fen
from app.extensions import db
from app.ledger import accounts
from app.ledger.models import JournalEntry, Posting
from app.timeutil import now


_ENTRIES = JournalEntry.__table__
_INSERT_ENTRY = insert(_ENTRIES).returning(_ENTRIES.c.id)
_INSERT_POSTING = insert(Posting.__table__)


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
    # Rows, not objects: every payment's job books an entry, and the unit of work costs
    # more than the two INSERTs it would send (the entry's, with its id returned, then
    # one for all its postings).
    entry_id = db.session.execute(
        _INSERT_ENTRY,
        {"kind": kind, "source_key": source_key, "order_id": order_id, "memo": memo, "created_at": now()},
    ).scalar_one()
    if postings:
        db.session.execute(_INSERT_POSTING, [
            {"entry_id": entry_id, "account": account, "amount_fen": amount}
            for account, amount in postings
        ])
    return entry_id


def release_key(order_line_id: int) -> str:
    """The source key of the entry that made a line's shares available."""
    return f"release:{order_line_id}"


def released_line_ids(order_line_ids: Sequence[int]) -> set[int]:
    if not order_line_ids:
        return set()
    keys = {release_key(line_id): line_id for line_id in order_line_ids}
    found = db.session.scalars(select(JournalEntry.source_key).where(JournalEntry.source_key.in_(keys)))
    return {keys[key] for key in found}


def line_legs(line: OrderLine, released: bool = False) -> list[tuple[str, int]]:
    """What one line's sale credits: tax, each author's share (fixed at sale, pending until
    released) and platform revenue, which keeps the rest. Negative, as credits are."""
    net = line.amount_fen - line.tax_fen
    legs = [(accounts.TAX_PAYABLE, -line.tax_fen)]
    for share in line.shares:
        account = (accounts.instructor_available if released else accounts.instructor_pending)
        legs.append((account(share.instructor_id), -share.share_fen))
    legs.append((accounts.PLATFORM_REVENUE, -(net - sum(share.share_fen for share in line.shares))))
    return legs


def _received(channel: str, amount_fen: int, fee_fen: int) -> list[tuple[str, int]]:
    """Money in at a channel: it owes us the amount less its fee, which is our expense."""
    return [(accounts.channel(channel), amount_fen - fee_fen), (accounts.CHANNEL_FEES, fee_fen)]


def post_sale(order: Order, channel: str, attempt_id: int, fee_fen: int) -> int:
    """A paid order split into tax, instructor pending shares and platform revenue.

    An order paid partly by balance takes that part from its hold (app/wallet)."""
    legs = _received(channel, channel_due_fen(order), fee_fen)
    legs.append((accounts.wallet_hold(order.id), order.wallet_paid_fen + order.wallet_bonus_fen))
    for line in order.lines:
        legs.extend(line_legs(line))
    return post_entry(
        "payment", f"payment:{attempt_id}", legs, order_id=order.id,
        memo=f"order {order.order_no} paid by {channel}",
    )


def post_refund(
    order: Order, lines: Sequence[OrderLine], channel: str | None, refund_id: int, fee_fen: int,
    wallet_paid_fen: int = 0, wallet_bonus_fen: int = 0,
) -> int:
    """Reverse the refunded lines' legs exactly, and the fee the channel gives back.

    A share still pending comes back out of pending; one already released claws back
    from available, which may go negative and is netted against later earnings.
    Refunding every line of an order brings each of its accounts back to zero, to the fen.
    The balance part (paid money and bonus apart) goes back to the learner's balance;
    only the rest leaves through ``channel`` (None when nothing does).
    """
    released = released_line_ids([line.id for line in lines])
    channel_fen = sum(line.amount_fen for line in lines) - wallet_paid_fen - wallet_bonus_fen
    legs = [(accounts.learner_wallet(order.user_id), -wallet_paid_fen),
            (accounts.learner_wallet_bonus(order.user_id), -wallet_bonus_fen)]
    if channel is not None:
        legs.extend((account, -amount) for account, amount in _received(channel, channel_fen, fee_fen))
    elif channel_fen or fee_fen:
        raise UnbalancedEntry(f"refund:{refund_id}: a channel part with no channel")
    for line in lines:
        legs.extend((account, -amount) for account, amount in line_legs(line, line.id in released))
    return post_entry(
        "refund", f"refund:{refund_id}", legs, order_id=order.id,
        memo=f"refund of {len(lines)} line(s) of order {order.order_no}",
    )


def post_release(line: OrderLine) -> int:
    """The line's refund window closed: its shares move from pending to available."""
    legs: list[tuple[str, int]] = []
    for share in line.shares:
        legs.append((accounts.instructor_pending(share.instructor_id), share.share_fen))
        legs.append((accounts.instructor_available(share.instructor_id), -share.share_fen))
    return post_entry(
        "release", release_key(line.id), legs, order_id=line.order_id,
        memo=f"refund window of order line {line.id} closed",
    )


def post_unallocated_receipt(
    order: Order, channel: str, attempt_id: int, amount_fen: int, fee_fen: int
) -> int:
    """Book money that arrived for an order that cannot keep it (an orphan payment)."""
    return post_entry(
        "orphan_payment",
        f"payment:{attempt_id}",
        _received(channel, amount_fen, fee_fen) + [(accounts.UNALLOCATED_RECEIPTS, -amount_fen)],
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


def post_orphan_refund(order_id: int, channel: str, refund_id: int, amount_fen: int, fee_fen: int) -> int:
    """Money held as unallocated went back to its payer, and the channel its fee to us:
    every leg of the orphan payment returns to zero."""
    legs = [(account, -amount) for account, amount in _received(channel, amount_fen, fee_fen)]
    return post_entry(
        "orphan_refund",
        f"refund:{refund_id}",
        legs + [(accounts.UNALLOCATED_RECEIPTS, amount_fen)],
        order_id=order_id,
        memo="system refund of an orphan payment",
    )
