"""The pure rules of invoice requests: the state machine, the unified social credit code
(GB 32100-2015) and what an uploaded invoice file must look like. No framework, no
database: the services and forms call these.
"""
from __future__ import annotations

import io
import zipfile
from typing import Mapping

from app.payments.states import IllegalTransition

# requested ──issue──▶ issued ──refund──▶ red_letter_required ──reverse──▶ reversed
#     ├──reject──▶ rejected          (the learner may ask again)
#     └──cancel──▶ cancelled         (the order was refunded in full before issuing)
# A refund of an order whose invoice already waits for its red-letter reversal keeps it
# there ("refund" again): the reversal covers the whole invoice whatever was refunded.
INVOICE: Mapping[tuple[str, str], str] = {
    ("requested", "issue"): "issued",
    ("requested", "reject"): "rejected",
    ("requested", "cancel"): "cancelled",
    # A partial refund before issuing lowers the amount to invoice; the request stays.
    ("requested", "reduce"): "requested",
    ("issued", "refund"): "red_letter_required",
    ("red_letter_required", "refund"): "red_letter_required",
    ("red_letter_required", "reverse"): "reversed",
}

STATUSES = ("requested", "issued", "rejected", "cancelled", "red_letter_required", "reversed")
# A request in one of these holds its order: no second one until it is rejected,
# cancelled or reversed.
OPEN_STATUSES = ("requested", "issued", "red_letter_required")
TITLE_TYPES = ("personal", "company")
MAX_TITLE = 100


def next_invoice_status(status: str, event: str) -> str:
    try:
        return INVOICE[(status, event)]
    except KeyError:
        raise IllegalTransition("invoice", status, event) from None


# --- the unified social credit code (统一社会信用代码), GB 32100-2015 -----------------

# The code's alphabet: digits and upper-case letters without I, O, S, V and Z.
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_CODE_LENGTH = 18
# The weight of position i (from 0) is 3**i mod 31.
CREDIT_CODE_WEIGHTS = tuple(pow(3, position, 31) for position in range(CREDIT_CODE_LENGTH - 1))


def normalize_tax_id(text: str | None) -> str:
    """What the learner typed without spaces, in upper case (codes are printed so)."""
    return "".join((text or "").split()).upper()


def credit_code_check_character(first_17: str) -> str:
    """The 18th character for the first 17: 31 minus the weighted sum mod 31 (31 is 0).

    Raises ValueError for a character outside the alphabet or a wrong length."""
    if len(first_17) != CREDIT_CODE_LENGTH - 1:
        raise ValueError("17 characters expected")
    total = 0
    for character, weight in zip(first_17, CREDIT_CODE_WEIGHTS):
        value = CREDIT_CODE_ALPHABET.find(character)
        if value < 0:
            raise ValueError(f"{character!r} is not in the code's alphabet")
        total += value * weight
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def is_valid_credit_code(code: str) -> bool:
    """An 18-character unified social credit code: the alphabet, a six-digit division
    code in places 3–8, and the right check character (already normalised)."""
    if len(code) != CREDIT_CODE_LENGTH or not all(c in CREDIT_CODE_ALPHABET for c in code):
        return False
    if not code[2:8].isdigit():
        return False
    return credit_code_check_character(code[:17]) == code[17]


# --- the invoice file ---------------------------------------------------------------

FILE_TYPES: Mapping[str, str] = {"pdf": "application/pdf", "ofd": "application/ofd"}


def invoice_file_type(content: bytes) -> str | None:
    """"pdf" or "ofd" by what the bytes are, never by the uploaded name; None otherwise.

    An OFD document (GB/T 33190) is a ZIP package with OFD.xml at its root."""
    if content.startswith(b"%PDF-"):
        return "pdf"
    if content.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as package:
                names = set(package.namelist())
        except (zipfile.BadZipFile, ValueError):
            return None
        return "ofd" if "OFD.xml" in names else None
    return None


# An invoice number as the tax platform prints it: 8 digits (a paper or older electronic
# invoice, with its code apart) or the 20 digits of a fully digital one (数电发票).
INVOICE_NUMBER_LENGTHS = (8, 20)


def normalize_invoice_number(text: str | None) -> str:
    return "".join((text or "").split())


def is_valid_invoice_number(number: str) -> bool:
    return number.isascii() and number.isdigit() and len(number) in INVOICE_NUMBER_LENGTHS
