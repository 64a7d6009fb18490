"""Issuing receipts, and finding them for the pages.

Issuing runs inside the money transaction (app/followups.py): it adds one row and
flushes, never commits. It is idempotent through the unique (kind, source_id): a second
call for the same payment or refund inserts nothing (``ON CONFLICT DO NOTHING``, so not
even a racing one fails the payment's transaction). It costs one SELECT and one INSERT:
the order and its lines are in the session already when a payment or refund is booked.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from flask import current_app
from sqlalchemy import exists, select
from sqlalchemy.dialects import postgresql, sqlite

from app.accounts.models import User
from app.checkout.models import MEMBERSHIP_TITLE, TOPUP_TITLE, Order
from app.extensions import db
from app.payments.models import OrphanPayment, PaymentAttempt, Refund
from app.receipts.canonical import beijing_iso, canonical_json, mask_email
from app.receipts.models import Receipt
from app.receipts.signing import ReceiptKey
from app.timeutil import beijing, now

RECEIPT_FORMAT = 1  # the "version" field: bumped if the fields ever change meaning
RECEIPT_NO_RE = re.compile(r"[PBR][0-9]{16,27}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
_PREFIX = {"payment": "P", "balance": "B", "refund": "R"}
BALANCE = "balance"  # the "channel" of money the prepaid balance moved


@dataclass(frozen=True)
class Settled:
    """How money moved, whatever moved it: ``method`` is a channel (``alipay``,
    ``wechat``) or ``balance``, whose ``trade_no`` is then None."""

    source_id: int
    method: str
    trade_no: str | None
    amount_fen: int
    at: datetime


def receipt_key() -> ReceiptKey:
    return current_app.extensions["cashier.receipt_key"]


def receipt_number(kind: str, source_id: int, at: datetime) -> str:
    """Readable and fixed by what it names: the kind's letter, the Beijing date the money
    moved, and the source row's id (at least eight digits), so issuing again yields the
    same number and the same row."""
    return f"{_PREFIX[kind]}{beijing(at):%Y%m%d}{source_id:08d}"


def build_receipt(kind: str, order: Order, learner_email: str, settled: Settled,
                  items: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    """The receipt's fields (README.md lists them); ``extra`` adds a kind's own."""
    key = receipt_key()
    return {
        "version": RECEIPT_FORMAT,
        "receipt_no": receipt_number(kind, settled.source_id, settled.at),
        "kind": kind,
        "order_no": order.order_no,
        "learner": mask_email(learner_email),
        "items": items,
        "amount_fen": settled.amount_fen,
        "currency": order.currency,
        "channel": settled.method,
        "channel_trade_no": settled.trade_no,
        ("refunded_at" if kind == "refund" else "paid_at"): beijing_iso(settled.at),
        "platform": current_app.config["RECEIPT_PLATFORM_NAME"],
        "key_id": key.key_id,
        **extra,
    }


def _store(kind: str, order_id: int, source_id: int, receipt: dict[str, Any]) -> None:
    key = receipt_key()
    text = canonical_json(receipt)
    values = {
        "receipt_no": receipt["receipt_no"], "kind": kind, "order_id": order_id,
        "source_id": source_id, "amount_fen": receipt["amount_fen"], "canonical_json": text,
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "signature": key.sign(text), "key_id": key.key_id, "issued_at": now(),
    }
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    db.session.execute(dialect.insert(Receipt).values(**values).on_conflict_do_nothing())
    db.session.flush()


def issue_payment_receipt(order_id: int) -> None:
    """The receipt of the payment that paid the order: its succeeded attempt that is
    not an orphan given back (a late payment that was fulfilled counts) or, for an order
    the prepaid balance paid alone, the balance (kind ``balance``). ``amount_fen`` is the
    whole payment; ``balance_fen`` says how much of it the balance gave."""
    given_back = exists().where(
        OrphanPayment.attempt_id == PaymentAttempt.id, OrphanPayment.resolution != "fulfilled"
    )
    row = db.session.execute(
        select(PaymentAttempt.id, PaymentAttempt.channel, PaymentAttempt.channel_trade_no,
               PaymentAttempt.amount_fen, PaymentAttempt.succeeded_at, User.email)
        .join(Order, Order.id == PaymentAttempt.order_id)
        .join(User, User.id == Order.user_id)
        .where(PaymentAttempt.order_id == order_id, PaymentAttempt.status == "succeeded", ~given_back)
        .order_by(PaymentAttempt.id.desc())
        .limit(1)
    ).one_or_none()
    order = db.session.get(Order, order_id)
    balance_fen = order.wallet_paid_fen + order.wallet_bonus_fen
    if row is not None:
        kind, email = "payment", row.email
        settled = Settled(row.id, row.channel, row.channel_trade_no, row.amount_fen + balance_fen,
                          row.succeeded_at or now())
    elif balance_fen and balance_fen == order.total_fen and order.paid_at is not None:
        kind, email = "balance", _learner_email(order)
        settled = Settled(order.id, BALANCE, None, balance_fen, order.paid_at)
    else:
        return
    items = [{"title": line.title, "amount_fen": line.amount_fen} for line in order.lines]
    extra = {"balance_fen": balance_fen} if balance_fen else {}
    if order.kind == "topup":  # no lines: the one thing bought is balance
        items = [{"title": TOPUP_TITLE, "amount_fen": order.total_fen}]
        extra["bonus_fen"] = order.topup_bonus_fen
    elif order.kind == "membership":  # no lines either: the one thing bought is the period
        items = [{"title": MEMBERSHIP_TITLE, "amount_fen": order.total_fen}]
    _store(kind, order.id, settled.source_id,
           build_receipt(kind, order, email, settled, items, extra))


def issue_refund_receipt(refund_id: int) -> None:
    """The receipt of a succeeded refund: the lines it gave back and the amount, and how
    much of it went back to the prepaid balance rather than through the channel."""
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status != "succeeded":
        return
    order = db.session.get(Order, refund.order_id)
    attempt = refund.attempt  # None when the balance alone paid the order
    method, trade_no = (attempt.channel, attempt.channel_trade_no) if attempt else (BALANCE, None)
    settled = Settled(refund.id, method, trade_no, refund.amount_fen, refund.succeeded_at or now())
    items = [{"title": line.order_line.title, "amount_fen": line.amount_fen} for line in refund.lines]
    extra = {"refund_no": refund.refund_no, "channel_refund_no": refund.channel_refund_no}
    balance_fen = refund.wallet_paid_fen + refund.wallet_bonus_fen
    if balance_fen:
        extra["balance_fen"] = balance_fen
    _store("refund", order.id, refund.id,
           build_receipt("refund", order, _learner_email(order), settled, items, extra))


def _learner_email(order: Order) -> str:
    return db.session.scalar(select(User.email).where(User.id == order.user_id))


def receipts_by_order(order_ids: Sequence[int]) -> dict[int, list[Receipt]]:
    """Each order's receipts, oldest first, in one query (every id a key)."""
    found: dict[int, list[Receipt]] = {order_id: [] for order_id in order_ids}
    if order_ids:
        for receipt in db.session.scalars(
            select(Receipt).where(Receipt.order_id.in_(order_ids)).order_by(Receipt.id)
        ):
            found[receipt.order_id].append(receipt)
    return found


def receipt_for_viewer(receipt_no: str, user: User) -> Receipt | None:
    """The receipt if ``user`` may open it: the order's learner, or staff. Someone
    else's receipt is simply not found."""
    if not RECEIPT_NO_RE.fullmatch(receipt_no):
        return None
    query = select(Receipt).join(Order, Order.id == Receipt.order_id).where(Receipt.receipt_no == receipt_no)
    if not user.is_staff:
        query = query.where(Order.user_id == user.id)
    return db.session.scalar(query)


def published_receipt(receipt_no: str, sha256: str) -> Receipt | None:
    """A receipt for the public verify page's link: found only with both its number and
    its SHA-256, so receipt numbers, which are easy to guess, open nothing alone."""
    if not (RECEIPT_NO_RE.fullmatch(receipt_no) and SHA256_RE.fullmatch(sha256)):
        return None
    return db.session.scalar(
        select(Receipt).where(Receipt.receipt_no == receipt_no, Receipt.sha256 == sha256)
    )
