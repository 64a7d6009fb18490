"""Builds the channel adapters from the app's configuration, and says which channels a
learner may be offered right now.

The adapter is the same whether it talks to a real channel or to the built-in emulator:
only the base URL and the keys differ (DESIGN.md §4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import requests
from flask import Flask, current_app
from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

from app.config import (
    CHANNELS,
    EMULATOR_ALIPAY_APP_ID,
    EMULATOR_ALIPAY_SELLER_ID,
    EMULATOR_WECHAT_APP_ID,
    EMULATOR_WECHAT_CERT_SERIAL,
    EMULATOR_WECHAT_MCH_ID,
    EMULATOR_WECHAT_PUBLIC_KEY_ID,
)
from app.payments.channels.alipay import AlipayChannel, AlipaySettings
from app.payments.channels.base import PaymentChannel
from app.payments.channels.wechat import WechatChannel, WechatSettings
from app.payments.health import is_healthy
from app.payments.keys import alipay_keys, wechat_keys
from app.timeutil import as_aware, system_now

_EXTENSION_KEY = "cashier.channels"
LABELS = {"alipay": _l("Alipay"), "wechat": _l("WeChat Pay")}


class UnknownChannel(LookupError):
    pass


@dataclass(frozen=True)
class ChannelOption:
    """A channel as the pay page shows it; ``reason`` says why it cannot be used now."""

    name: str
    label: LazyString
    available: bool
    reason: LazyString | None = None


def alipay_settings(config: Mapping[str, Any]) -> AlipaySettings:
    keys = alipay_keys(config)
    gateway_url = config.get("ALIPAY_GATEWAY_URL")
    if config["PAYMENT_GATEWAY_EMULATOR"] and not gateway_url:
        # This site's own emulator, unless one served apart is named (bench/ does: a
        # site whose sync workers called themselves would wait on themselves).
        gateway_url = config["PUBLIC_BASE_URL"] + "/gateway/alipay/gateway.do"
    return AlipaySettings(
        app_id=config.get("ALIPAY_APP_ID") or EMULATOR_ALIPAY_APP_ID,
        seller_id=config.get("ALIPAY_SELLER_ID") or EMULATOR_ALIPAY_SELLER_ID,
        app_private_key_pem=keys.app_private_pem,
        alipay_public_key_pem=keys.alipay_public_pem,
        gateway_url=gateway_url,
        timeout_seconds=config["CHANNEL_TIMEOUT_SECONDS"],
    )


def wechat_settings(config: Mapping[str, Any]) -> WechatSettings:
    keys = wechat_keys(config)
    base_url = config.get("WECHAT_API_BASE_URL")
    if config["PAYMENT_GATEWAY_EMULATOR"] and not base_url:
        base_url = config["PUBLIC_BASE_URL"] + "/gateway/wechat"
    return WechatSettings(
        mch_id=config.get("WECHAT_MCH_ID") or EMULATOR_WECHAT_MCH_ID,
        app_id=config.get("WECHAT_APP_ID") or EMULATOR_WECHAT_APP_ID,
        merchant_private_key_pem=keys.merchant_private_pem,
        merchant_cert_serial=config.get("WECHAT_MCH_CERT_SERIAL") or EMULATOR_WECHAT_CERT_SERIAL,
        apiv3_key=keys.apiv3_key,
        platform_public_key_pem=keys.platform_public_pem,
        platform_public_key_id=(
            config.get("WECHAT_PLATFORM_PUBLIC_KEY_ID") or EMULATOR_WECHAT_PUBLIC_KEY_ID
        ),
        api_base_url=base_url,
        timeout_seconds=config["CHANNEL_TIMEOUT_SECONDS"],
    )


def init_channels(app: Flask) -> None:
    """Create the shared HTTP session; adapters are built lazily on first use."""
    session = requests.Session()
    session.headers["User-Agent"] = "CourseCashier/1.0"
    app.extensions["cashier.http"] = session
    app.extensions[_EXTENSION_KEY] = {}


def http_session() -> requests.Session:
    return current_app.extensions["cashier.http"]


def enabled_channels() -> tuple[str, ...]:
    return current_app.config["PAYMENT_CHANNELS"]


def get_channel(name: str) -> PaymentChannel:
    """The adapter for an enabled channel (or one that old attempts still use)."""
    if name not in CHANNELS:
        raise UnknownChannel(name)
    channels: dict[str, PaymentChannel] = current_app.extensions[_EXTENSION_KEY]
    if name not in channels:
        config_clock = current_app.config.get("CLOCK") or system_now
        clock = lambda: as_aware(config_clock())  # noqa: E731
        if name == "alipay":
            channels[name] = AlipayChannel(alipay_settings(current_app.config), http_session(), clock)
        else:
            channels[name] = WechatChannel(wechat_settings(current_app.config), http_session(), clock)
    return channels[name]


def max_amount_fen(channel: str) -> int:
    return current_app.config[f"{channel.upper()}_MAX_AMOUNT_FEN"]


def channel_options(amount_fen: int, excluding: str | None = None) -> list[ChannelOption]:
    """Every enabled channel but ``excluding``, each marked available or not for this
    amount, right now."""
    return [_option(name, amount_fen) for name in enabled_channels() if name != excluding]


def _option(name: str, amount_fen: int) -> ChannelOption:
    reason = None
    if amount_fen > max_amount_fen(name):
        reason = _l("The amount is above this channel's limit.")
    elif not is_healthy(name):
        reason = _l("Temporarily unavailable; please use another payment method.")
    return ChannelOption(name, LABELS[name], reason is None, reason)


def unavailable_reason(channel: str, amount_fen: int) -> LazyString | None:
    """None when ``channel`` may take ``amount_fen`` now, else why not (for the learner,
    translated when read: compare it with None, as its truth would translate it)."""
    if channel not in enabled_channels():
        return _l("This payment method is not available.")
    return _option(channel, amount_fen).reason
