"""Instructor bank accounts, sealed with AES-256-GCM under ``FIELD_ENCRYPTION_KEY``.

The number is only ever opened for the payout export; everywhere else it shows masked.
The keyring is the app's (`app.fieldkeys`): staff second-factor secrets share it.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.audit.services import record
from app.earnings.models import BankAccount, Payout
from app.errors import ServiceError
from app.extensions import db
from app.fieldcrypto import AccountNumberError, SealedField, normalize_account_number
from app.fieldkeys import field_keyring
from app.timeutil import now

MAX_NAME = 80
# A cell starting with one of these is a formula to a spreadsheet: names go into the
# bank file as typed (the bank's importer reads them raw), so such names are refused.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# normalize_account_number's refusals by their code: app.fieldcrypto is pure (no Flask),
# so its English sentences are said again here, where they can be translated.
NUMBER_REFUSALS = {
    "length": _l("A bank account number is 8 to 30 digits."),
    "wide_digits": _l("A bank account number is 8 to 30 digits. Please type them as half-width digits 0-9."),
}


class BankAccountError(ServiceError):
    """Bank account details that cannot be stored (the message is lazy: `ServiceError`)."""


def context_for(instructor_id: int) -> str:
    """Bound into each ciphertext, so a sealed number copied to another row won't open."""
    return f"instructor:{instructor_id}:bank_account"


def masked_number(last4: str) -> str:
    """How a number shows everywhere but the payout export: its last four digits."""
    return f"•••• {last4}"  # the only part of the number kept in clear


def account_of(instructor_id: int) -> BankAccount | None:
    return db.session.get(BankAccount, instructor_id)


def save_bank_account(
    instructor_id: int, holder: str, bank_name: str, number: str, actor_id: int
) -> None:
    """Store (or replace) where the instructor is paid. Audited, number never logged."""
    holder, bank_name = " ".join((holder or "").split()), " ".join((bank_name or "").split())
    if not holder or not bank_name:
        raise BankAccountError("required", _l("Please give the account holder and the bank."))
    if len(holder) > MAX_NAME or len(bank_name) > MAX_NAME:
        raise BankAccountError("too_long", _l("Names are at most %(max)s characters.", max=MAX_NAME))
    if holder.startswith(FORMULA_STARTS) or bank_name.startswith(FORMULA_STARTS):
        raise BankAccountError("name", _l("A name cannot start with = + - or @."))
    try:
        digits = normalize_account_number(number)
    except AccountNumberError as error:
        raise BankAccountError("number", NUMBER_REFUSALS[error.code]) from None
    sealed = field_keyring().encrypt(digits, context_for(instructor_id))
    account = db.session.get(BankAccount, instructor_id)
    before = _snapshot(account)
    if account is None:
        account = BankAccount(instructor_id=instructor_id)
        db.session.add(account)
    account.account_holder = holder
    account.bank_name = bank_name
    account.key_id = sealed.key_id
    account.ciphertext = sealed.ciphertext
    account.last4 = digits[-4:]
    account.updated_at = now()
    db.session.flush()
    record(actor_id, "bank_account.save", "instructor", instructor_id, "bank account changed",
           before, _snapshot(account))


def open_number(instructor_id: int, key_id: str, ciphertext: str) -> str:
    """The account number in clear: for the payout export only."""
    return field_keyring().decrypt(SealedField(key_id, ciphertext), context_for(instructor_id))


def rotate_bank_accounts() -> int:
    """Re-seal every number under the current key, the copies on payouts included (a
    pending payout's copy is what the bank file opens); returns how many changed."""
    keyring = field_keyring()
    changed = 0

    def resealed(key_id: str, ciphertext: str, instructor_id: int) -> SealedField | None:
        nonlocal changed
        sealed = SealedField(key_id, ciphertext)
        if not keyring.needs_rotation(sealed):
            return None
        changed += 1
        return keyring.rotate(sealed, context_for(instructor_id))

    for account in db.session.scalars(select(BankAccount)):
        if fresh := resealed(account.key_id, account.ciphertext, account.instructor_id):
            account.key_id, account.ciphertext = fresh.key_id, fresh.ciphertext
    for payout in db.session.scalars(select(Payout)):
        if fresh := resealed(payout.account_key_id, payout.account_ciphertext, payout.instructor_id):
            payout.account_key_id, payout.account_ciphertext = fresh.key_id, fresh.ciphertext
    db.session.flush()
    return changed


def _snapshot(account: BankAccount | None) -> dict[str, str] | None:
    if account is None:
        return None
    return {"holder": account.account_holder, "bank": account.bank_name,
            "number": masked_number(account.last4), "key_id": account.key_id}
