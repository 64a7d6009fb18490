"""The platform's receipt key: where it comes from, and signing and checking with it.

RSA-2048, RSASSA-PKCS1-v1_5 with SHA-256 over the canonical JSON's UTF-8 bytes. In the
embedded default the key is generated into ``KEYS_DIR`` on first start; production names
it with ``RECEIPT_PRIVATE_KEY_FILE`` and ``RECEIPT_KEY_ID`` (app/config.py refuses to
start without them). The key is read once per app, when the app is made.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from Crypto.PublicKey.RSA import RsaKey

from app.payments.channels.crypto import (
    generate_rsa_keypair,
    load_private_key,
    rsa2_sign,
    rsa2_verify,
)
from app.payments.keys import read_key_file

RECEIPT_PRIVATE = "receipt_private.pem"  # in KEYS_DIR, the embedded default's key
SIGNATURE_BYTES = 256  # RSA-2048


@dataclass(frozen=True)
class ReceiptKey:
    """The platform's signing key, its public half as PEM, and the id receipts name it by."""

    key_id: str
    private_key: RsaKey = field(repr=False)
    public_pem: str

    def sign(self, canonical: str) -> str:
        """The base64 signature of the canonical text."""
        return rsa2_sign(canonical.encode("utf-8"), self.private_key)

    def verifies(self, canonical: str, signature: bytes) -> bool:
        """Whether ``signature`` (raw bytes) is ours over ``canonical``."""
        return rsa2_verify(canonical.encode("utf-8"), base64.b64encode(signature).decode("ascii"),
                           self.private_key.public_key())


def ensure_receipt_key(keys_dir: str) -> None:
    """Generate the embedded default's receipt key, if there is none yet.

    Written to a temporary file and linked into place, so a process starting at the
    same moment (the web server and a worker) reads either no file or the whole key,
    never half of one, and exactly one generated key wins."""
    folder = Path(keys_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / RECEIPT_PRIVATE
    if target.exists():
        return
    private_pem, _ = generate_rsa_keypair()
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".receipt-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(private_pem)
        os.chmod(temporary, 0o600)
        try:
            os.link(temporary, target)
        except FileExistsError:
            pass  # another process won the race; its key is the one
    finally:
        os.unlink(temporary)


def derived_key_id(public_pem: str) -> str:
    """The key id the embedded default uses: a fingerprint of the public key, so a new
    key never passes for the old one."""
    return "rk-" + hashlib.sha256(public_pem.encode("ascii")).hexdigest()[:16]


def load_receipt_key(config: Mapping[str, Any]) -> ReceiptKey:
    """The configured key, or the embedded default's from ``KEYS_DIR``."""
    path = config.get("RECEIPT_PRIVATE_KEY_FILE") or Path(config["KEYS_DIR"]) / RECEIPT_PRIVATE
    private_key = load_private_key(read_key_file(path))
    if private_key.size_in_bits() != SIGNATURE_BYTES * 8:
        raise RuntimeError(f"the receipt key in {path} must be an RSA-2048 key")
    public_pem = private_key.public_key().export_key(format="PEM").decode("ascii") + "\n"
    return ReceiptKey(config.get("RECEIPT_KEY_ID") or derived_key_id(public_pem), private_key, public_pem)


def decode_signature(text: str) -> bytes | None:
    """The raw signature in base64 ``text`` (whitespace ignored), or None when it is not
    strict base64 of an RSA-2048 signature's length."""
    compact = "".join(text.split())
    try:
        raw = base64.b64decode(compact.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    return raw if len(raw) == SIGNATURE_BYTES else None
