"""Where channel keys come from: the configured files, or, with the emulator on, a key
set generated into ``KEYS_DIR`` on first run so `make run` needs no setup."""
from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from app.payments.channels.crypto import KeyFormatError, generate_rsa_keypair, load_private_key, load_public_key

# File names inside KEYS_DIR. The "gateway" / "platform" pairs belong to the emulator,
# playing Alipay and WeChat Pay; the others are ours as the merchant.
ALIPAY_APP_PRIVATE = "alipay_app_private.pem"
ALIPAY_APP_PUBLIC = "alipay_app_public.pem"
ALIPAY_GATEWAY_PRIVATE = "alipay_gateway_private.pem"
ALIPAY_GATEWAY_PUBLIC = "alipay_gateway_public.pem"
WECHAT_MCH_PRIVATE = "wechat_mch_private.pem"
WECHAT_MCH_PUBLIC = "wechat_mch_public.pem"
WECHAT_PLATFORM_PRIVATE = "wechat_platform_private.pem"
WECHAT_PLATFORM_PUBLIC = "wechat_platform_public.pem"
WECHAT_APIV3_KEY = "wechat_apiv3.key"  # 32 ASCII characters, shared by merchant and WeChat

_KEY_PAIRS = (
    (ALIPAY_APP_PRIVATE, ALIPAY_APP_PUBLIC),
    (ALIPAY_GATEWAY_PRIVATE, ALIPAY_GATEWAY_PUBLIC),
    (WECHAT_MCH_PRIVATE, WECHAT_MCH_PUBLIC),
    (WECHAT_PLATFORM_PRIVATE, WECHAT_PLATFORM_PUBLIC),
)
APIV3_KEY_LENGTH = 32

# The configured key files, and whether each holds a private key of ours or a public
# key of the channel's.
KEY_FILE_VARIABLES = {
    "ALIPAY_APP_PRIVATE_KEY_FILE": "private",
    "ALIPAY_PUBLIC_KEY_FILE": "public",
    "WECHAT_MCH_PRIVATE_KEY_FILE": "private",
    "WECHAT_PLATFORM_PUBLIC_KEY_FILE": "public",
    "RECEIPT_PRIVATE_KEY_FILE": "private",  # the platform's receipt key (app/receipts)
}


@dataclass(frozen=True)
class AlipayKeys:
    app_private_pem: str = field(repr=False)
    alipay_public_pem: str = field(repr=False)


@dataclass(frozen=True)
class WechatKeys:
    merchant_private_pem: str = field(repr=False)
    platform_public_pem: str = field(repr=False)
    apiv3_key: str = field(repr=False)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def ensure_emulator_keys(keys_dir: str) -> None:
    """Generate the merchant and emulator keys that are missing (emulator mode only)."""
    folder = Path(keys_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for private_name, public_name in _KEY_PAIRS:
        if (folder / private_name).exists():
            continue
        private_pem, public_pem = generate_rsa_keypair()
        _write_private(folder / private_name, private_pem)
        (folder / public_name).write_text(public_pem)
    if not (folder / WECHAT_APIV3_KEY).exists():
        alphabet = string.ascii_letters + string.digits
        key = "".join(secrets.choice(alphabet) for _ in range(APIV3_KEY_LENGTH))
        _write_private(folder / WECHAT_APIV3_KEY, key)


def key_file_problem(variable: str, path: str) -> str | None:
    """What is wrong with the key file a variable names, or None. Never quotes the key."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not a text file"
        return f"{variable} names {path}, which cannot be read ({reason})"
    load = load_private_key if KEY_FILE_VARIABLES[variable] == "private" else load_public_key
    try:
        load(text)
    except KeyFormatError as error:
        return f"{variable} names {path}, which is not an RSA {KEY_FILE_VARIABLES[variable]} key ({error})"
    return None


def read_key_file(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError as error:
        raise RuntimeError(f"cannot read key file {path}: {error.strerror}") from None


def alipay_keys(config: Mapping[str, Any]) -> AlipayKeys:
    """Our Alipay app private key and Alipay's public key, per DESIGN.md §5."""
    keys_dir = Path(config["KEYS_DIR"])
    private_file = config.get("ALIPAY_APP_PRIVATE_KEY_FILE") or keys_dir / ALIPAY_APP_PRIVATE
    public_file = config.get("ALIPAY_PUBLIC_KEY_FILE") or keys_dir / ALIPAY_GATEWAY_PUBLIC
    return AlipayKeys(read_key_file(private_file), read_key_file(public_file))


def wechat_keys(config: Mapping[str, Any]) -> WechatKeys:
    """Our merchant API key, WeChat Pay's platform public key and the APIv3 key."""
    keys_dir = Path(config["KEYS_DIR"])
    private_file = config.get("WECHAT_MCH_PRIVATE_KEY_FILE") or keys_dir / WECHAT_MCH_PRIVATE
    public_file = (
        config.get("WECHAT_PLATFORM_PUBLIC_KEY_FILE") or keys_dir / WECHAT_PLATFORM_PUBLIC
    )
    apiv3_key = (config.get("WECHAT_APIV3_KEY") or read_key_file(keys_dir / WECHAT_APIV3_KEY)).strip()
    if not valid_apiv3_key(apiv3_key):
        raise RuntimeError("the WeChat Pay APIv3 key must be exactly 32 ASCII characters")
    return WechatKeys(read_key_file(private_file), read_key_file(public_file), apiv3_key)


def valid_apiv3_key(key: str) -> bool:
    """AES-256 needs 32 bytes: WeChat's APIv3 key is 32 printable ASCII characters."""
    return len(key) == APIV3_KEY_LENGTH and key.isascii() and key.isprintable()
