"""Payout batches: finance pays instructors their available balances through the bank.

Creating a payout moves its amount from the instructor's ``available`` to
``payout:clearing`` at once, so a second batch can never pay the same money again.
Marking it paid (with the bank's reference) takes it out of clearing; a transfer the bank
returns puts it back to ``available``. Services flush; the admin view commits.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy import select

from app.accounts.models import User
from app.audit.services import record
from app.catalog.models import Instructor
from app.earnings.bank_accounts import account_of, open_number
from app.earnings.models import Payout, PayoutBatch
from app.earnings.periods import parse_period
from app.errors import ServiceError
from app.extensions import db
from app.fieldcrypto import FieldDecryptError
from app.ledger import accounts
from app.ledger.services import balance, post_entry
from app.money import format_yuan
from app.payments.transitions import compare_and_set
from app.timeutil import beijing, now

PAYOUT_STAFF = frozenset({"finance", "admin"})
MAX_REFERENCE = 64


class PayoutError(ServiceError):
    """A payout step that cannot be taken."""


@dataclass(frozen=True)
class BatchResult:
    batch_id: int
    paid_instructors: int
    total_fen: int
    skipped_without_account: tuple[str, ...]  # names of instructors owed money but not payable


def available_fen(instructor_id: int) -> int:
    """What the instructor may be paid now (negative when refunds clawed back more)."""
    return -balance(accounts.instructor_available(instructor_id))


def _staff(staff_id: int) -> User:
    user = db.session.get(User, staff_id)
    if user is None or user.role not in PAYOUT_STAFF:
        raise PayoutError("forbidden", "Only finance or admin may handle payouts.")
    return user


def create_batch(period: str, minimum_fen: int, staff_id: int) -> BatchResult:
    """One payout per instructor whose available balance is at least ``minimum_fen`` and
    who has a bank account on file. Each instructor row is locked while its balance is
    read and moved, so two batches made at once cannot both pay the same money."""
    _staff(staff_id)
    if parse_period(period) is None:
        raise PayoutError("period", "The period is a month such as 2026-11.")
    if minimum_fen < 1:
        raise PayoutError("minimum", "The minimum is at least ¥0.01.")
    batch = PayoutBatch(period=period, minimum_fen=minimum_fen, created_by=staff_id, created_at=now())
    db.session.add(batch)
    db.session.flush()
    skipped: list[str] = []
    total = 0
    for instructor in db.session.scalars(select(Instructor).order_by(Instructor.id).with_for_update()):
        amount = available_fen(instructor.id)
        if amount < minimum_fen:
            continue
        account = account_of(instructor.id)
        if account is None:
            skipped.append(instructor.name)
            continue
        payout = Payout(
            batch_id=batch.id, instructor_id=instructor.id, amount_fen=amount, status="pending",
            account_holder=account.account_holder, bank_name=account.bank_name,
            account_key_id=account.key_id, account_ciphertext=account.ciphertext,
            account_last4=account.last4, created_at=now(),
        )
        db.session.add(payout)
        db.session.flush()
        post_entry(
            "payout", f"payout:{payout.id}",
            [(accounts.instructor_available(instructor.id), amount), (accounts.PAYOUT_CLEARING, -amount)],
            memo=f"payout {payout.id} of batch {batch.id} ({period})",
        )
        total += amount
    if total == 0:
        raise PayoutError(
            "nothing_to_pay",
            "No instructor with a bank account has an available balance of at least "
            f"¥{format_yuan(minimum_fen)}." + (f" Without a bank account: {', '.join(skipped)}." if skipped else ""),
        )
    record(staff_id, "payout_batch.create", "payout_batch", batch.id, f"payouts for {period}", None,
           {"period": period, "minimum_fen": minimum_fen, "payouts": len(batch.payouts), "total_fen": total,
            "skipped_without_account": skipped})
    return BatchResult(batch.id, len(batch.payouts), total, tuple(skipped))


EXPORT_HEADER = ("payout_id", "account_holder", "bank_name", "account_number", "amount_yuan",
                 "currency", "remark")


def export_batch(batch_id: int, staff_id: int, reissue_reason: str | None = None) -> bytes:
    """The bank's transfer file: the one place account numbers appear in clear.

    A batch's file is issued once: a second file uploaded to the bank would pay every
    transfer again, while the ledger shows one payout. Issuing it again takes a reason
    (the bank lost the first one, say), and each issue is audited, since it shows every
    number in the batch. Each row carries the payout's own reference for the bank.
    """
    _staff(staff_id)
    batch = db.session.get(PayoutBatch, batch_id)
    if batch is None:
        raise PayoutError("not_found", "No such payout batch.")
    reason = " ".join((reissue_reason or "").split())
    if batch.exported_at is not None and not reason:
        raise PayoutError(
            "already_exported",
            f"This bank file was issued on {beijing(batch.exported_at):%Y-%m-%d %H:%M}. Sending it to the bank "
            "twice pays every transfer twice: re-issue it only with a reason.",
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_HEADER)
    for payout in batch.payouts:
        if payout.status != "pending":
            continue
        try:
            number = open_number(payout.instructor_id, payout.account_key_id, payout.account_ciphertext)
        except FieldDecryptError:
            raise PayoutError(
                "key_missing",
                f"Payout #{payout.id}'s account number is sealed under key {payout.account_key_id}, which is "
                "not configured: put it back in FIELD_ENCRYPTION_KEY and run `flask earnings rotate-keys`.",
            ) from None
        writer.writerow((
            payout.id, payout.account_holder, payout.bank_name, number,
            format_yuan(payout.amount_fen), "CNY", payout_reference(batch, payout),
        ))
    action = "payout_batch.reissue" if batch.exported_at is not None else "payout_batch.export"
    batch.exported_at = now()
    db.session.flush()
    record(staff_id, action, "payout_batch", batch.id, reason or "issued for the bank")
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def payout_reference(batch: PayoutBatch, payout: Payout) -> str:
    """What the bank shows the instructor, and what it can recognise a repeat by."""
    return f"CourseCashier payout {batch.period} #{payout.id}"


def mark_paid(payout_id: int, bank_reference: str, staff_id: int) -> None:
    _staff(staff_id)
    reference = " ".join((bank_reference or "").split())
    if not reference or len(reference) > MAX_REFERENCE:
        raise PayoutError("reference", f"Give the bank's reference (at most {MAX_REFERENCE} characters).")
    payout = db.session.get(Payout, payout_id)
    if payout is None:
        raise PayoutError("not_found", "No such payout.")
    if not compare_and_set(Payout, payout.id, "payout", "pending", "pay",
                           bank_reference=reference, settled_at=now()):
        raise PayoutError("not_pending", "Only a pending payout can be marked paid.")
    post_entry(
        "payout_paid", f"payout_paid:{payout.id}",
        [(accounts.PAYOUT_CLEARING, payout.amount_fen), (accounts.PLATFORM_BANK, -payout.amount_fen)],
        memo=f"payout {payout.id} paid, bank reference {reference}",
    )
    record(staff_id, "payout.paid", "payout", payout.id, f"bank reference {reference}",
           {"status": "pending"}, {"status": "paid", "bank_reference": reference})


def mark_failed(payout_id: int, reason: str, staff_id: int) -> None:
    """The bank returned the transfer: the amount goes back to the instructor's available."""
    _staff(staff_id)
    text = " ".join((reason or "").split())
    if not text:
        raise PayoutError("reason_required", "Please give a reason.")
    payout = db.session.get(Payout, payout_id)
    if payout is None:
        raise PayoutError("not_found", "No such payout.")
    if not compare_and_set(Payout, payout.id, "payout", "pending", "fail", settled_at=now()):
        raise PayoutError("not_pending", "Only a pending payout can be marked failed.")
    post_entry(
        "payout_failed", f"payout_failed:{payout.id}",
        [(accounts.PAYOUT_CLEARING, payout.amount_fen),
         (accounts.instructor_available(payout.instructor_id), -payout.amount_fen)],
        memo=f"payout {payout.id} returned: {text[:200]}",
    )
    record(staff_id, "payout.failed", "payout", payout.id, text[:255], {"status": "pending"}, {"status": "failed"})


def payouts_of(instructor_id: int) -> list[Payout]:
    return list(db.session.scalars(
        select(Payout).where(Payout.instructor_id == instructor_id).order_by(Payout.id.desc())
    ))
