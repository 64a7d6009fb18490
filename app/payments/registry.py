"""Builds the channel adapters from the app's configuration.

The adapter is the same whether it talks to Alipay or to the built-in emulator: only
the gateway URL and the keys differ (DESIGN.md §4).
"""
from __future__ import annotations

from typing import Any, Mapping

import requests
from flask import Flask, current_app

from app.config import EMULATOR_ALIPAY_APP_ID, EMULATOR_ALIPAY_SELLER_ID
from app.payments.channels.alipay import AlipayChannel, AlipaySettings
from app.payments.channels.base import PaymentChannel
from app.payments.keys import alipay_keys
from app.timeutil import as_aware, system_now

ENABLED_CHANNELS = ("alipay",)
_EXTENSION_KEY = "cashier.channels"


class UnknownChannel(LookupError):
    pass


def alipay_settings(config: Mapping[str, Any]) -> AlipaySettings:
    keys = alipay_keys(config)
    gateway_url = config.get("ALIPAY_GATEWAY_URL")
    if config["PAYMENT_GATEWAY_EMULATOR"]:
        gateway_url = config["PUBLIC_BASE_URL"] + "/gateway/alipay/gateway.do"
    return AlipaySettings(
        app_id=config.get("ALIPAY_APP_ID") or EMULATOR_ALIPAY_APP_ID,
        seller_id=config.get("ALIPAY_SELLER_ID") or EMULATOR_ALIPAY_SELLER_ID,
        app_private_key_pem=keys.app_private_pem,
        alipay_public_key_pem=keys.alipay_public_pem,
        gateway_url=gateway_url,
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


def get_channel(name: str) -> PaymentChannel:
    channels: dict[str, PaymentChannel] = current_app.extensions[_EXTENSION_KEY]
    if name not in channels:
        if name != "alipay":
            raise UnknownChannel(name)
        clock = current_app.config.get("CLOCK") or system_now
        channels[name] = AlipayChannel(
            alipay_settings(current_app.config), http_session(), clock=lambda: as_aware(clock())
        )
    return channels[name]

