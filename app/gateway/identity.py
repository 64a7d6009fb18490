"""Who the emulator is and whom it trusts: the merchant it serves and the keys on each side.

Loaded lazily on first use and cached per app, so importing or mounting the emulator
reads no files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app

from app.config import (
    EMULATOR_ALIPAY_APP_ID,
    EMULATOR_ALIPAY_SELLER_ID,
    EMULATOR_WECHAT_APP_ID,
    EMULATOR_WECHAT_CERT_SERIAL,
    EMULATOR_WECHAT_MCH_ID,
    EMULATOR_WECHAT_PUBLIC_KEY_ID,
)
from app.payments.channels.crypto import RsaKey, load_private_key, load_public_key
from app.payments.keys import (
    ALIPAY_APP_PUBLIC,
    ALIPAY_GATEWAY_PRIVATE,
    WECHAT_APIV3_KEY,
    WECHAT_MCH_PUBLIC,
    WECHAT_PLATFORM_PRIVATE,
)

_EXTENSION_KEY = "cashier.gateway_identity"
_WECHAT_EXTENSION_KEY = "cashier.gateway_wechat_identity"
DEFAULT_MERCHANT_NAME = "CourseCashier"
DEFAULT_SANDBOX_BUYER = "learner@example.com"
# The one payer of the WeChat sandbox; shaped like an openid (28 characters).
SANDBOX_OPENID = "oSandboxPayer000000000000001"


@dataclass(frozen=True)
class AlipayIdentity:
    """The one merchant app the emulated Alipay knows, and the emulator's own key pair."""

    app_id: str
    seller_id: str
    merchant_name: str
    sandbox_buyer: str
    merchant_public_key: RsaKey = field(repr=False)  # verifies our requests
    gateway_private_key: RsaKey = field(repr=False)  # signs answers and notifications


@dataclass(frozen=True)
class WechatIdentity:
    """The one merchant the emulated WeChat Pay knows, and the platform's own key pair."""

    mch_id: str
    app_id: str
    merchant_name: str
    merchant_cert_serial: str  # the serial_no our requests must name
    platform_public_key_id: str  # sent as Wechatpay-Serial
    sandbox_openid: str
    apiv3_key: bytes = field(repr=False)  # encrypts callback resources
    merchant_public_key: RsaKey = field(repr=False)  # verifies our requests
    platform_private_key: RsaKey = field(repr=False)  # signs answers and callbacks


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise RuntimeError(f"gateway emulator cannot read {path}: {error.strerror}") from None


def alipay_identity() -> AlipayIdentity:
    """The emulator's Alipay identity for the current app.

    Reads ``ALIPAY_APP_ID`` / ``ALIPAY_SELLER_ID`` (falling back to the emulator
    defaults, exactly as the channel registry does), ``GATEWAY_MERCHANT_NAME``,
    ``GATEWAY_SANDBOX_BUYER`` and the key files in ``KEYS_DIR``.
    """
    cached: AlipayIdentity | None = current_app.extensions.get(_EXTENSION_KEY)
    if cached is not None:
        return cached
    config = current_app.config
    keys_dir = Path(config["KEYS_DIR"])
    identity = AlipayIdentity(
        app_id=config.get("ALIPAY_APP_ID") or EMULATOR_ALIPAY_APP_ID,
        seller_id=config.get("ALIPAY_SELLER_ID") or EMULATOR_ALIPAY_SELLER_ID,
        merchant_name=config.get("GATEWAY_MERCHANT_NAME") or DEFAULT_MERCHANT_NAME,
        sandbox_buyer=config.get("GATEWAY_SANDBOX_BUYER") or DEFAULT_SANDBOX_BUYER,
        merchant_public_key=load_public_key(_read(keys_dir / ALIPAY_APP_PUBLIC)),
        gateway_private_key=load_private_key(_read(keys_dir / ALIPAY_GATEWAY_PRIVATE)),
    )
    current_app.extensions[_EXTENSION_KEY] = identity
    return identity


def wechat_identity() -> WechatIdentity:
    """The emulator's WeChat Pay identity for the current app.

    Reads ``WECHAT_MCH_ID``, ``WECHAT_APP_ID``, ``WECHAT_MCH_CERT_SERIAL``,
    ``WECHAT_PLATFORM_PUBLIC_KEY_ID`` and ``WECHAT_APIV3_KEY`` (each falling back to the
    emulator defaults, as the channel registry does) and the key files in ``KEYS_DIR``.
    """
    cached: WechatIdentity | None = current_app.extensions.get(_WECHAT_EXTENSION_KEY)
    if cached is not None:
        return cached
    config = current_app.config
    keys_dir = Path(config["KEYS_DIR"])
    apiv3_key = config.get("WECHAT_APIV3_KEY") or _read(keys_dir / WECHAT_APIV3_KEY).strip()
    identity = WechatIdentity(
        mch_id=config.get("WECHAT_MCH_ID") or EMULATOR_WECHAT_MCH_ID,
        app_id=config.get("WECHAT_APP_ID") or EMULATOR_WECHAT_APP_ID,
        merchant_name=config.get("GATEWAY_MERCHANT_NAME") or DEFAULT_MERCHANT_NAME,
        merchant_cert_serial=config.get("WECHAT_MCH_CERT_SERIAL") or EMULATOR_WECHAT_CERT_SERIAL,
        platform_public_key_id=(
            config.get("WECHAT_PLATFORM_PUBLIC_KEY_ID") or EMULATOR_WECHAT_PUBLIC_KEY_ID
        ),
        sandbox_openid=SANDBOX_OPENID,
        apiv3_key=apiv3_key.encode("utf-8"),
        merchant_public_key=load_public_key(_read(keys_dir / WECHAT_MCH_PUBLIC)),
        platform_private_key=load_private_key(_read(keys_dir / WECHAT_PLATFORM_PRIVATE)),
    )
    current_app.extensions[_WECHAT_EXTENSION_KEY] = identity
    return identity
