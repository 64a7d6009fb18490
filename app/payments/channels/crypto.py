"""Cryptographic primitives shared by the channel adapters, on pycryptodome.

Nothing here knows about a particular channel: callers decide what bytes are signed.
"""
from __future__ import annotations

import base64
import binascii
import re

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA
from Crypto.Signature import pkcs1_15

RsaKey = RSA.RsaKey

_PEM_HEADER_RE = re.compile(r"-----BEGIN [A-Z0-9 ]+-----")
_WHITESPACE_RE = re.compile(r"\s+")


class KeyFormatError(ValueError):
    """Key text that is neither PEM nor a bare base64 DER body of the expected kind."""


def _import_rsa_key(text: str) -> RsaKey:
    """Import PEM, or the bare base64 DER body that channel consoles hand out.

    Some consoles (Alipay's, for one) show keys as one base64 line without the
    ``-----BEGIN …-----`` lines; the DER inside is PKCS#1 or PKCS#8 for private keys
    and SubjectPublicKeyInfo for public ones, which pycryptodome reads once decoded.
    """
    if not isinstance(text, str) or not text.strip():
        raise KeyFormatError("empty key text")
    try:
        if _PEM_HEADER_RE.search(text):
            return RSA.import_key(text.strip())
        der = base64.b64decode(_WHITESPACE_RE.sub("", text), validate=True)
        return RSA.import_key(der)
    except (ValueError, IndexError, TypeError, binascii.Error):
        # Not chained: the underlying message could quote key material.
        raise KeyFormatError("not an RSA key in PEM or base64 DER form") from None


def load_private_key(pem: str) -> RsaKey:
    """Load an RSA private key from PEM (PKCS#1 or PKCS#8) or a bare base64 body."""
    key = _import_rsa_key(pem)
    if not key.has_private():
        raise KeyFormatError("expected a private key, got a public key")
    return key


def load_public_key(pem: str) -> RsaKey:
    """Load an RSA public key from PEM or a bare base64 SubjectPublicKeyInfo body.

    A private key is refused: configuring one where a peer's public key belongs is a
    mistake worth failing on, not something to paper over.
    """
    key = _import_rsa_key(pem)
    if key.has_private():
        raise KeyFormatError("expected a public key, got a private key")
    return key


def rsa2_sign(message: bytes, private_key: RsaKey) -> str:
    """SHA256withRSA (PKCS#1 v1.5) signature of ``message``, base64 without newlines."""
    signature = pkcs1_15.new(private_key).sign(SHA256.new(message))
    return base64.b64encode(signature).decode("ascii")


def rsa2_verify(message: bytes, signature_b64: str, public_key: RsaKey) -> bool:
    """True only for a valid SHA256withRSA signature; never raises on bad input."""
    if not isinstance(signature_b64, str) or not signature_b64:
        return False
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        pkcs1_15.new(public_key).verify(SHA256.new(message), signature)
    except (ValueError, TypeError, binascii.Error):
        return False
    return True


def generate_rsa_keypair(bits: int = 2048) -> tuple[str, str]:
    """A fresh key pair as (private PEM in PKCS#8, public PEM SubjectPublicKeyInfo)."""
    key = RSA.generate(bits)
    private_pem = key.export_key(format="PEM", pkcs=8).decode("ascii")
    public_pem = key.public_key().export_key(format="PEM").decode("ascii")
    return private_pem, public_pem


class DecryptionError(ValueError):
    """AES-GCM ciphertext that does not authenticate under the key, nonce and data."""


GCM_TAG_BYTES = 16


def aes_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> str:
    """AEAD_AES_256_GCM as WeChat Pay uses it: base64 of ciphertext followed by the tag."""
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=GCM_TAG_BYTES)
    cipher.update(associated_data)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return base64.b64encode(ciphertext + tag).decode("ascii")


def aes_gcm_decrypt(key: bytes, nonce: bytes, ciphertext_b64: str, associated_data: bytes) -> bytes:
    """The plaintext, or DecryptionError when anything was tampered with or mistyped."""
    try:
        data = base64.b64decode(ciphertext_b64, validate=True)
    except (ValueError, TypeError, binascii.Error):
        raise DecryptionError("ciphertext is not base64") from None
    if len(data) < GCM_TAG_BYTES or len(key) != 32 or not nonce:
        raise DecryptionError("ciphertext, key or nonce has the wrong length")
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=GCM_TAG_BYTES)
    cipher.update(associated_data)
    try:
        return cipher.decrypt_and_verify(data[:-GCM_TAG_BYTES], data[-GCM_TAG_BYTES:])
    except ValueError:
        raise DecryptionError("ciphertext does not authenticate") from None
