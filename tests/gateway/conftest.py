from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from app.payments.channels.alipay import AlipayChannel
from app.payments.channels.crypto import RsaKey, load_public_key
from app.payments.registry import alipay_settings
from app.timeutil import as_aware
from tests.conftest import Clock
from tests.gateway.wechat_helpers import Merchant


@pytest.fixture
def channel(app: Flask, clock: Clock) -> AlipayChannel:
    """The real adapter, configured as the app configures it, over the in-process transport."""
    return AlipayChannel(
        alipay_settings(app.config), app.extensions["cashier.http"], clock=lambda: as_aware(clock())
    )


@pytest.fixture
def gateway_public_key(keys_dir: Path) -> RsaKey:
    return load_public_key((keys_dir / "alipay_gateway_public.pem").read_text())


@pytest.fixture
def merchant(app: Flask, clock: Clock, keys_dir: Path) -> Merchant:
    """The merchant's seat against the emulated WeChat Pay, signing with wechatpayv3."""
    return Merchant(app, clock, keys_dir)
