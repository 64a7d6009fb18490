"""Encrypted fields: AES-256-GCM under a rotating keyring, masking and account numbers."""
from __future__ import annotations

import base64
import dataclasses

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.fieldcrypto import (
    FieldDecryptError,
    FieldKeyError,
    Keyring,
    SealedField,
    generate_key_entry,
    normalize_account_number,
    parse_keyring,
)

# Fixed keys, so a failure reproduces; never used outside the tests.
OLD_KEY = bytes(range(32))
NEW_KEY = bytes(range(100, 132))
OLD_ENTRY = "k2026a:" + base64.b64encode(OLD_KEY).decode("ascii")
NEW_ENTRY = "k2026b:" + base64.b64encode(NEW_KEY).decode("ascii")
CONTEXT = "instructor:42:bank_account"
ACCOUNT = "6222020200001234567"


@pytest.fixture
def keyring() -> Keyring:
    return parse_keyring(OLD_ENTRY)


def with_raw(sealed: SealedField, change) -> SealedField:
    """``sealed`` with its decoded ciphertext bytes passed through ``change``."""
    raw = base64.b64decode(sealed.ciphertext)
    return dataclasses.replace(sealed, ciphertext=base64.b64encode(change(raw)).decode("ascii"))


# --- sealing and opening ---------------------------------------------------------------


def test_round_trip_keeps_chinese_text(keyring):
    plaintext = "中国工商银行 北京分行 6222020200001234567"
    sealed = keyring.encrypt(plaintext, CONTEXT)
    assert sealed.key_id == "k2026a"
    assert "6222" not in sealed.ciphertext
    assert keyring.decrypt(sealed, CONTEXT) == plaintext


def test_round_trip_of_the_empty_string(keyring):
    assert keyring.decrypt(keyring.encrypt("", CONTEXT), CONTEXT) == ""


def test_ciphertext_is_nonce_body_and_tag(keyring):
    raw = base64.b64decode(keyring.encrypt(ACCOUNT, CONTEXT).ciphertext, validate=True)
    assert len(raw) == 12 + len(ACCOUNT.encode()) + 16


def test_two_encryptions_of_the_same_value_differ(keyring):
    first = keyring.encrypt(ACCOUNT, CONTEXT)
    second = keyring.encrypt(ACCOUNT, CONTEXT)
    assert first.ciphertext != second.ciphertext
    # The nonce is what differs: a repeated GCM nonce under one key would be fatal.
    assert base64.b64decode(first.ciphertext)[:12] != base64.b64decode(second.ciphertext)[:12]


def test_sealed_field_is_frozen(keyring):
    sealed = keyring.encrypt(ACCOUNT, CONTEXT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sealed.key_id = "other"  # type: ignore[misc]


def test_a_ciphertext_copied_to_another_row_does_not_open(keyring):
    sealed = keyring.encrypt(ACCOUNT, CONTEXT)
    with pytest.raises(FieldDecryptError) as caught:
        keyring.decrypt(sealed, "instructor:43:bank_account")
    assert str(caught.value) == (
        "field sealed under key 'k2026a' failed authentication "
        "(tampered, or opened with the wrong context)"
    )


@pytest.mark.parametrize("position", [0, 11, 12, 20, -16, -1], ids=lambda p: f"byte{p}")
def test_a_flipped_byte_anywhere_is_refused(keyring, position):
    sealed = keyring.encrypt(ACCOUNT, CONTEXT)

    def flip(raw: bytes) -> bytes:
        changed = bytearray(raw)
        changed[position] ^= 0x01
        return bytes(changed)

    with pytest.raises(FieldDecryptError):
        keyring.decrypt(with_raw(sealed, flip), CONTEXT)


@pytest.mark.parametrize(
    "cut",
    [lambda raw: raw[:-1], lambda raw: raw[:-16], lambda raw: raw[:27], lambda raw: b""],
    ids=["last-byte", "whole-tag", "shorter-than-nonce-and-tag", "empty"],
)
def test_a_truncated_ciphertext_is_refused(keyring, cut):
    sealed = keyring.encrypt(ACCOUNT, CONTEXT)
    with pytest.raises(FieldDecryptError):
        keyring.decrypt(with_raw(sealed, cut), CONTEXT)


@pytest.mark.parametrize("ciphertext", ["not base64!", "QUJD=", "QUJDRA"])
def test_ciphertext_that_is_not_base64_is_refused(keyring, ciphertext):
    with pytest.raises(FieldDecryptError) as caught:
        keyring.decrypt(SealedField("k2026a", ciphertext), CONTEXT)
    assert ciphertext not in str(caught.value)


def test_unknown_key_id_is_refused_naming_only_the_id(keyring):
    sealed = dataclasses.replace(keyring.encrypt(ACCOUNT, CONTEXT), key_id="k2099z")
    with pytest.raises(FieldDecryptError) as caught:
        keyring.decrypt(sealed, CONTEXT)
    assert str(caught.value) == "no key 'k2099z' in FIELD_ENCRYPTION_KEY"


def test_a_malformed_stored_key_id_is_not_quoted(keyring):
    sealed = dataclasses.replace(keyring.encrypt(ACCOUNT, CONTEXT), key_id="<script>")
    with pytest.raises(FieldDecryptError) as caught:
        keyring.decrypt(sealed, CONTEXT)
    assert "<script>" not in str(caught.value)


def test_a_value_under_one_key_id_does_not_open_under_another_key():
    keyring = parse_keyring(f"{NEW_ENTRY},{OLD_ENTRY}")
    sealed = keyring.encrypt(ACCOUNT, CONTEXT)
    with pytest.raises(FieldDecryptError):
        keyring.decrypt(dataclasses.replace(sealed, key_id="k2026a"), CONTEXT)


def test_decrypt_errors_carry_no_secret(keyring):
    sealed = keyring.encrypt(ACCOUNT, CONTEXT)
    with pytest.raises(FieldDecryptError) as caught:
        keyring.decrypt(sealed, "instructor:43:bank_account")
    message = str(caught.value)
    assert sealed.ciphertext not in message
    assert OLD_ENTRY.split(":")[1] not in message
    assert ACCOUNT not in message


@pytest.mark.parametrize("context", ["", None])
def test_an_empty_context_is_a_programming_error(keyring, context):
    with pytest.raises(ValueError, match="context"):
        keyring.encrypt(ACCOUNT, context)


# --- rotation --------------------------------------------------------------------------


def test_a_value_under_the_old_key_opens_after_a_new_key_is_put_first():
    before = parse_keyring(OLD_ENTRY)
    sealed = before.encrypt(ACCOUNT, CONTEXT)

    after = parse_keyring(f"{NEW_ENTRY}, {OLD_ENTRY}")
    assert after.current_key_id == "k2026b"
    assert after.decrypt(sealed, CONTEXT) == ACCOUNT
    assert after.needs_rotation(sealed)

    rotated = after.rotate(sealed, CONTEXT)
    assert rotated.key_id == "k2026b"
    assert not after.needs_rotation(rotated)
    assert after.decrypt(rotated, CONTEXT) == ACCOUNT
    # Once rotated, the old key can leave the keyring.
    assert parse_keyring(NEW_ENTRY).decrypt(rotated, CONTEXT) == ACCOUNT
    with pytest.raises(FieldDecryptError):
        parse_keyring(NEW_ENTRY).decrypt(sealed, CONTEXT)


def test_new_values_are_sealed_under_the_first_key():
    keyring = parse_keyring(f"{NEW_ENTRY},{OLD_ENTRY}")
    assert keyring.encrypt(ACCOUNT, CONTEXT).key_id == "k2026b"
    assert keyring.key_ids == ("k2026b", "k2026a")


def test_rotate_leaves_a_current_value_as_it_is_but_still_checks_it():
    keyring = parse_keyring(f"{NEW_ENTRY},{OLD_ENTRY}")
    sealed = keyring.encrypt(ACCOUNT, CONTEXT)
    assert not keyring.needs_rotation(sealed)
    assert keyring.rotate(sealed, CONTEXT) is sealed
    with pytest.raises(FieldDecryptError):
        keyring.rotate(sealed, "instructor:43:bank_account")


def test_rotate_keeps_the_context_binding():
    sealed = parse_keyring(OLD_ENTRY).encrypt(ACCOUNT, CONTEXT)
    keyring = parse_keyring(f"{NEW_ENTRY},{OLD_ENTRY}")
    rotated = keyring.rotate(sealed, CONTEXT)
    with pytest.raises(FieldDecryptError):
        keyring.decrypt(rotated, "instructor:43:bank_account")


# --- parsing the configuration ---------------------------------------------------------


def test_generated_entries_parse_and_differ():
    first, second = generate_key_entry("k2027a"), generate_key_entry("k2027b")
    keyring = parse_keyring(f"{first},{second}")
    assert keyring.current_key_id == "k2027a"
    assert first.split(":")[1] != second.split(":")[1]
    assert len(base64.b64decode(first.split(":")[1], validate=True)) == 32


@pytest.mark.parametrize("key_id", ["", "x" * 17, "k 1", "k:1", "ключ"])
def test_generate_refuses_a_malformed_key_id(key_id):
    with pytest.raises(FieldKeyError):
        generate_key_entry(key_id)


def test_the_repr_of_a_keyring_shows_ids_only():
    keyring = parse_keyring(f"{NEW_ENTRY},{OLD_ENTRY}")
    assert repr(keyring) == "Keyring(current='k2026b', key_ids=('k2026b', 'k2026a'))"


B64_31 = base64.b64encode(bytes(range(31))).decode("ascii")
B64_33 = base64.b64encode(bytes(range(33))).decode("ascii")
B64_32 = base64.b64encode(OLD_KEY).decode("ascii")
# The same 32 bytes with the unused low bits of the last character set ("8" -> "9"):
# b64decode alone accepts it.
B64_32_NONCANONICAL = B64_32[:-2] + "9="
assert base64.b64decode(B64_32_NONCANONICAL) == OLD_KEY


@pytest.mark.parametrize(
    ("text", "secret", "message"),
    [
        ("", None, "empty"),
        ("   ", None, "empty"),
        ("k1:" + B64_32[:-1] + "!", B64_32[:-1], "not valid base64"),
        ("k1:" + B64_32[:-1], B64_32[:-1], "not valid base64"),
        ("k1:" + B64_32_NONCANONICAL, B64_32_NONCANONICAL, "not canonical"),
        ("k1:" + B64_32.replace("A", "-", 1), None, "not valid base64"),
        ("k1:" + B64_31, B64_31, "31 bytes"),
        ("k1:" + B64_33, B64_33, "33 bytes"),
        (f"k1:{B64_32},k1:{B64_31}", B64_32, "more than once"),
        (f"k1:{B64_32},,k2:{B64_32}", B64_32, "entry 2 is empty"),
        (f"k1:{B64_32},", B64_32, "entry 2 is empty"),
        (B64_32, B64_32, "not of the form"),
        (f"{B64_32}:k1", B64_32, "entry 1: a key id is"),
        (f"toolongkeyid12345:{B64_32}", None, "a key id is"),
        (f":{B64_32}", B64_32, "a key id is"),
    ],
    ids=[
        "empty", "blank", "bad-character", "bad-padding", "non-canonical", "urlsafe-alphabet",
        "31-bytes", "33-bytes", "duplicate-id", "empty-entry", "trailing-comma",
        "no-key-id", "swapped", "long-key-id", "blank-key-id",
    ],
)
def test_a_malformed_keyring_is_refused_without_quoting_the_key(text, secret, message):
    with pytest.raises(FieldKeyError) as caught:
        parse_keyring(text)
    error = caught.value
    assert message in str(error)
    if secret is not None:
        assert secret not in str(error)
        assert secret[:12] not in str(error)
    # No chained exception that a traceback or error reporter could print.
    assert error.__cause__ is None
    assert error.__context__ is None


def test_a_key_error_is_a_value_error():
    assert issubclass(FieldKeyError, ValueError)
    assert issubclass(FieldDecryptError, ValueError)


def test_a_keyring_built_directly_checks_its_keys():
    with pytest.raises(FieldKeyError):
        Keyring({"k1": bytes(16)})
    with pytest.raises(FieldKeyError):
        Keyring({})
    assert Keyring({"k1": OLD_KEY, "k0": NEW_KEY}).current_key_id == "k1"


# --- compatibility with an independent AES-GCM implementation -------------------------


def test_our_sealed_field_opens_with_the_cryptography_package(keyring):
    sealed = keyring.encrypt("6222 0202 中文", CONTEXT)
    raw = base64.b64decode(sealed.ciphertext)
    opened = AESGCM(OLD_KEY).decrypt(raw[:12], raw[12:], CONTEXT.encode("utf-8"))
    assert opened.decode("utf-8") == "6222 0202 中文"


def test_a_field_sealed_by_the_cryptography_package_opens_with_ours(keyring):
    nonce = bytes(range(12))
    body_and_tag = AESGCM(OLD_KEY).encrypt(nonce, "账户 6222".encode("utf-8"), CONTEXT.encode())
    sealed = SealedField("k2026a", base64.b64encode(nonce + body_and_tag).decode("ascii"))
    assert keyring.decrypt(sealed, CONTEXT) == "账户 6222"
    with pytest.raises(FieldDecryptError):
        keyring.decrypt(sealed, "instructor:42:other")


# --- display and input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "number"),
    [
        ("6222020200001234567", "6222020200001234567"),
        ("6222 0202 0000 1234 567", "6222020200001234567"),
        ("6222-0202-0000-1234", "6222020200001234"),
        ("  62220202  ", "62220202"),
        ("6222\u30000202\u30000000", "622202020000"),  # an IME's ideographic space
        ("62220202\n", "62220202"),  # pasted with its line end
        ("1" * 30, "1" * 30),
    ],
)
def test_normalize_drops_spaces_and_hyphens(typed, number):
    assert normalize_account_number(typed) == number


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "1234567",
        "1" * 31,
        "6222O20200001234",  # a letter O for a zero
        "6222.0202.0000",
        "+6222020200001234",
        "１２３４５６７８９０",  # full-width digits
        "6222٠٢٠٢0000",  # Arabic-Indic digits
        " - - ",
    ],
)
def test_normalize_refuses_anything_but_8_to_30_ascii_digits(typed):
    with pytest.raises(ValueError) as caught:
        normalize_account_number(typed)
    assert str(caught.value).startswith("A bank account number is 8 to 30 digits.")


def test_full_width_digits_get_a_hint():
    with pytest.raises(ValueError, match="half-width"):
        normalize_account_number("６２２２０２０２００００")
