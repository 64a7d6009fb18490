"""The built-in payment gateway emulator: plays Alipay's open platform so the whole system
runs offline, with the real protocol (RSA2-signed requests, answers and notifications).

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

    The API endpoint is CSRF-exempt (the merchant's server calls it, with an RSA2
    signature instead of a session); the sandbox page's buttons keep CSRF. Notifications
    go out through ``app.extensions["cashier.gateway_http"]``, a session of its own so a
    test can mount a transport on it.
    """
    from app.gateway import alipay_api, sandbox  # noqa: F401  (views attach to bp)
    from app.gateway.blueprint import bp

    app.register_blueprint(bp)
    csrf.exempt(alipay_api.alipay_gateway)
    session = requests.Session()
    session.headers["User-Agent"] = "Mozilla/4.0 (AlipayGatewayEmulator)"
    app.extensions["cashier.gateway_http"] = session


__all__ = ["init_gateway"]
