"""Encrypted database fields (instructor bank account numbers) with key rotation.

A field is sealed with AES-256-GCM under the current key of a keyring read from
``FIELD_ENCRYPTION_KEY``; the key id is stored beside the ciphertext, so older keys can
stay in the keyring for decryption while rows are re-sealed under the new one. The
caller's ``context`` (``"instructor:42:bank_account"``) is bound as associated data, so a
ciphertext copied onto another row or column does not decrypt.

Pure: no Flask, no database. Errors never carry key material: messages name key ids or
entry positions only, and lower-level exceptions are not chained.
"""
from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from typing import Mapping

from Crypto.Cipher import AES
from Crypto.Random import get_random_bytes

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM nonce size that needs no extra hashing step
TAG_BYTES = 16

_KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")
KEY_ID_RULE = "a key id is 1 to 16 characters of A-Z, a-z, 0-9, '_' and '-'"
# [0-9], not \d: \d also matches non-ASCII digits such as "１" or "٥", which a bank
# would not accept on a payout file.
_ACCOUNT_NUMBER_RE = re.compile(r"[0-9]{8,30}")
# What a person may type between digit groups: whitespace of any kind (an IME gives
# U+3000) and the hyphens and dashes phones and IMEs substitute for "-".
_ACCOUNT_SEPARATORS_RE = re.compile(r"[\s\-\u2010\u2011\u2012\u2013\u2014\uff0d]+")
ACCOUNT_NUMBER_MESSAGE = "A bank account number is 8 to 30 digits."


class AccountNumberError(ValueError):
    """An account number a bank would not take. The message is English; ``code`` ("length"
    or "wide_digits") is stable, so a page can say it in its reader's language."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class FieldKeyError(ValueError):
    """``FIELD_ENCRYPTION_KEY`` (or a key id) is malformed. The message holds no key material."""


class FieldDecryptError(ValueError):
    """A sealed field could not be opened: unknown key id, tampered, or the wrong context.

    The message names the key id only, never the ciphertext or key.
    """


@dataclass(frozen=True)
class SealedField:
    """What is stored for one encrypted field: two columns.

    ``ciphertext`` is standard base64 of nonce (12 bytes) || ciphertext || tag (16 bytes).
    """

    key_id: str
    ciphertext: str


def _is_key_id(key_id: object) -> bool:
    return isinstance(key_id, str) and _KEY_ID_RE.fullmatch(key_id) is not None


def _describe_key_id(key_id: object) -> str:
    """The key id for an error message, quoted only when it looks like one."""
    return repr(key_id) if _is_key_id(key_id) else "(malformed key id)"


def _decode_key(encoded: str, position: int) -> bytes:
    """Strict base64 of exactly 32 bytes; ``position`` (1-based) names the entry in errors."""
    key: bytes | None
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        key = None
    # Raised outside the except block so the error has no __context__ either: a
    # decoder's message could quote the text, and error reporters walk the chain.
    if key is None:
        raise FieldKeyError(f"key entry {position} is not valid base64")
    # b64decode tolerates non-zero padding bits; re-encoding makes each key one text.
    if base64.b64encode(key).decode("ascii") != encoded:
        raise FieldKeyError(f"key entry {position} is not canonical base64")
    if len(key) != KEY_BYTES:
        raise FieldKeyError(
            f"key entry {position} decodes to {len(key)} bytes; AES-256 needs {KEY_BYTES}"
        )
    return key


def _require_context(context: str) -> bytes:
    # An empty context would let a ciphertext move between rows unnoticed.
    if not isinstance(context, str) or not context:
        raise ValueError("context must be a non-empty string such as 'instructor:42:bank_account'")
    return context.encode("utf-8")


class Keyring:
    """The keys of ``FIELD_ENCRYPTION_KEY``: the first one encrypts, all of them decrypt.

    Build one with `parse_keyring`. The repr lists key ids only.
    """

    __slots__ = ("_keys", "_current_key_id")

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        """``keys`` maps key id to key bytes in configuration order; the first is current."""
        if not keys:
            raise FieldKeyError("a keyring needs at least one key")
        for key_id, key in keys.items():
            if not _is_key_id(key_id):
                raise FieldKeyError(KEY_ID_RULE)
            if len(key) != KEY_BYTES:
                raise FieldKeyError(f"key {key_id!r} is not {KEY_BYTES} bytes")
        self._keys = dict(keys)
        self._current_key_id = next(iter(self._keys))

    @property
    def current_key_id(self) -> str:
        """The id of the key new values are sealed under."""
        return self._current_key_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, the current one first, in configuration order."""
        return tuple(self._keys)

    def __repr__(self) -> str:
        return f"Keyring(current={self._current_key_id!r}, key_ids={self.key_ids!r})"

    def encrypt(self, plaintext: str, context: str) -> SealedField:
        """Seal ``plaintext`` under the current key with a fresh random nonce.

        Two calls with the same arguments give different ciphertexts.
        """
        if not isinstance(plaintext, str):
            raise TypeError("plaintext must be a str")
        associated = _require_context(context)
        nonce = get_random_bytes(NONCE_BYTES)
        cipher = AES.new(
            self._keys[self._current_key_id], AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES
        )
        cipher.update(associated)
        body, tag = cipher.encrypt_and_digest(plaintext.encode("utf-8"))
        sealed = base64.b64encode(nonce + body + tag).decode("ascii")
        return SealedField(key_id=self._current_key_id, ciphertext=sealed)

    def decrypt(self, sealed: SealedField, context: str) -> str:
        """Open ``sealed``, which must have been sealed with the same ``context``.

        Raises `FieldDecryptError` for an unknown key id, malformed or tampered
        ciphertext, or a different context; the three are not told apart beyond that,
        since GCM cannot tell tampering from a wrong context.
        """
        associated = _require_context(context)
        key = self._keys.get(sealed.key_id) if isinstance(sealed.key_id, str) else None
        named = _describe_key_id(sealed.key_id)
        if key is None:
            raise FieldDecryptError(f"no key {named} in FIELD_ENCRYPTION_KEY")
        try:
            raw = base64.b64decode(sealed.ciphertext, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise FieldDecryptError(f"field sealed under key {named} is not base64") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise FieldDecryptError(f"field sealed under key {named} is truncated")
        nonce, body, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
        cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES)
        cipher.update(associated)
        try:
            plaintext = cipher.decrypt_and_verify(body, tag)
        except ValueError:
            raise FieldDecryptError(
                f"field sealed under key {named} failed authentication "
                "(tampered, or opened with the wrong context)"
            ) from None
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            # Authentic but not ours: something else sealed bytes under this key.
            raise FieldDecryptError(f"field sealed under key {named} is not UTF-8 text") from None

    def needs_rotation(self, sealed: SealedField) -> bool:
        """Whether ``sealed`` is under a key other than the current one."""
        return sealed.key_id != self._current_key_id

    def rotate(self, sealed: SealedField, context: str) -> SealedField:
        """``sealed`` re-sealed under the current key, after checking it opens.

        A value already under the current key is returned as it is (still checked), so a
        rotation pass over a table only rewrites the rows that `needs_rotation`.
        """
        plaintext = self.decrypt(sealed, context)
        if not self.needs_rotation(sealed):
            return sealed
        return self.encrypt(plaintext, context)


def parse_keyring(text: str) -> Keyring:
    """Parse ``"key_id:base64key,key_id:base64key,..."``; the first entry is current.

    Whitespace around entries is ignored. Each key is strict, canonical base64 of
    exactly 32 bytes; ids are 1–16 characters of ``[A-Za-z0-9_-]`` and unique. Raises
    `FieldKeyError` naming the entry by position, never quoting it.
    """
    if not isinstance(text, str) or not text.strip():
        raise FieldKeyError("FIELD_ENCRYPTION_KEY is empty; expected 'key_id:base64key'")
    keys: dict[str, bytes] = {}
    for position, entry in enumerate(text.split(","), start=1):
        entry = entry.strip()
        if not entry:
            raise FieldKeyError(f"key entry {position} is empty")
        key_id, colon, encoded = entry.partition(":")
        if not colon:
            raise FieldKeyError(f"key entry {position} is not of the form 'key_id:base64key'")
        if not _is_key_id(key_id):
            # Not quoted: a malformed "id" may be key material pasted in the wrong place.
            raise FieldKeyError(f"key entry {position}: {KEY_ID_RULE}")
        if key_id in keys:
            raise FieldKeyError(f"key id {key_id!r} appears more than once")
        keys[key_id] = _decode_key(encoded, position)
    return Keyring(keys)


def generate_key_entry(key_id: str) -> str:
    """A new ``"key_id:base64key"`` entry with 32 random bytes.

    To rotate, put the new entry first in ``FIELD_ENCRYPTION_KEY`` and keep the old ones
    after it until every row has been re-sealed.
    """
    if not _is_key_id(key_id):
        raise FieldKeyError(KEY_ID_RULE)
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode('ascii')}"


def normalize_account_number(text: str) -> str:
    """The account number a person typed, as the digits a bank expects.

    Drops spaces and hyphens between digit groups, then accepts only 8 to 30 ASCII
    digits. Full-width or other non-ASCII digits are refused rather than converted, so
    what is stored is exactly what the person can check on screen. Raises
    `AccountNumberError` (a `ValueError`) with a message fit to show the person.
    """
    if not isinstance(text, str):
        raise TypeError("text must be a str")
    number = _ACCOUNT_SEPARATORS_RE.sub("", text)
    if _ACCOUNT_NUMBER_RE.fullmatch(number):
        return number
    if any(ch.isdigit() and not ch.isascii() for ch in number):
        raise AccountNumberError(
            "wide_digits", f"{ACCOUNT_NUMBER_MESSAGE} Please type them as half-width digits 0-9."
        )
    raise AccountNumberError("length", ACCOUNT_NUMBER_MESSAGE)

