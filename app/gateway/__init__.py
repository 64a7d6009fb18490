"""The built-in payment gateway emulator: plays Alipay's open platform and WeChat Pay's
API v3 so the whole system runs offline, with the real protocols (signed requests,
answers and notifications, WeChat's encrypted callbacks), refunds, and fault modes to
rehearse incidents with.

It is an independent party: it shares wire-format helpers with the channel adapters but
never reads CourseCashier's own tables or services. Mounted only when
``PAYMENT_GATEWAY_EMULATOR`` is on.
"""
from __future__ import annotations

import requests
from flask import Flask

from app.extensions import csrf


def init_gateway(app: Flask) -> None:
    """Mount the emulator on ``app`` under ``/gateway``.

    The API endpoints are CSRF-exempt (the merchant's server calls them, with an RSA
    signature instead of a session); the sandbox pages' and the operator page's forms
    keep CSRF. Notifications
    go out through ``app.extensions["cashier.gateway_http"]``, a session of its own so a
    test can mount a transport on it.
    """
    from app.gateway import (  # noqa: F401  (views attach to bp)
        alipay_api,
        operator,
        sandbox,
        wechat_api,
        wechat_sandbox,
    )
    from app.gateway.blueprint import bp

    app.register_blueprint(bp)
    csrf.exempt(alipay_api.alipay_gateway)
    for view in wechat_api.API_VIEWS:
        csrf.exempt(view)
    session = requests.Session()
    session.headers["User-Agent"] = "Mozilla/4.0 (PaymentGatewayEmulator)"
    app.extensions["cashier.gateway_http"] = session


__all__ = ["init_gateway"]
