"""Checking a receipt someone pasted or opened: what the public verify page says.

No Flask, no database: the text, the signature and our key in, a verdict out. Every
refusal has a stable code the page (and its tests) name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.receipts.canonical import NotCanonical, parse_canonical
from app.receipts.signing import ReceiptKey, decode_signature

# A real receipt is well under 4 KB; a pasted text this long is not one.
MAX_RECEIPT_CHARS = 16_000
MAX_SIGNATURE_CHARS = 1_000

REASONS = ("too_large", "malformed", "not_canonical", "unknown_key", "bad_signature_encoding",
           "signature_mismatch")


@dataclass(frozen=True)
class Verdict:
    """``reason`` is None for a valid receipt, else one of REASONS."""

    reason: str | None
    receipt: dict[str, Any] | None = None

    @property
    def valid(self) -> bool:
        return self.reason is None


def verify_receipt(text: str, signature: str, key: ReceiptKey) -> Verdict:
    """Whether ``text`` is a receipt we signed, as it was signed, with ``signature``."""
    if len(text) > MAX_RECEIPT_CHARS or len(signature) > MAX_SIGNATURE_CHARS:
        return Verdict("too_large")
    try:
        receipt = parse_canonical(text)
    except NotCanonical as refusal:
        return Verdict(refusal.code)
    if receipt.get("key_id") != key.key_id:
        return Verdict("unknown_key", receipt)
    raw = decode_signature(signature)
    if raw is None:
        return Verdict("bad_signature_encoding", receipt)
    if not key.verifies(text, raw):
        return Verdict("signature_mismatch", receipt)
    return Verdict(None, receipt)
