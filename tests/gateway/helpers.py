"""Shared pieces of the gateway emulator tests: charges, a scripted notify endpoint,
hand-signed requests and the SDK oracle."""
from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import requests
from alipay import AliPay
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.gateway.models import GatewayNotification
from app.gateway.notifier import deliver_due_notifications
from app.payments.channels.alipay import AlipayChannel, sign_params
from app.payments.channels.base import ChargeRequest
from app.payments.channels.crypto import load_private_key
from app.payments.registry import alipay_settings
from app.timeutil import as_aware
from tests.conftest import TEST_BASE_URL, Clock

GATEWAY_URL = TEST_BASE_URL + "/gateway/alipay/gateway.do"
NOTIFY_PATH = "/test-only/alipay-notify"
OUT_TRADE_NO = "P20261120000001"
SUBJECT = "Python 入门课"


class NotifyReceiver:
    """A stand-in merchant notify endpoint answering a scripted sequence of bodies
    (the last one repeats)."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.bodies: list[bytes] = []
        self.received = threading.Event()

    def __call__(self) -> str:
        self.bodies.append(request.get_data())
        self.received.set()
        return self.answers[min(len(self.bodies), len(self.answers)) - 1]

    def forms(self) -> list[dict[str, str]]:
        return [
            dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)) for body in self.bodies
        ]


def receiver(app: Flask, *answers: str) -> NotifyReceiver:
    """Mount a NotifyReceiver at NOTIFY_PATH; call before the app serves its first request."""
    endpoint = NotifyReceiver(list(answers))
    app.add_url_rule(NOTIFY_PATH, "test_only_alipay_notify", endpoint, methods=["POST"])
    return endpoint


def charge(
    clock: Clock,
    amount_fen: int = 9450,
    minutes: int = 15,
    out_trade_no: str = OUT_TRADE_NO,
    notify_url: str = TEST_BASE_URL + NOTIFY_PATH,
) -> ChargeRequest:
    return ChargeRequest(
        out_trade_no=out_trade_no,
        amount_fen=amount_fen,
        subject=SUBJECT,
        expires_at=as_aware(clock() + timedelta(minutes=minutes)),
        notify_url=notify_url,
    )


def qr_path(qr_code: str) -> str:
    return urlsplit(qr_code).path


def pay(channel: AlipayChannel, client: FlaskClient, clock: Clock) -> str:
    """Precreate, scan and confirm; the QR page's path."""
    path = qr_path(channel.precreate(charge(clock)).qr_code)
    client.get(path)
    assert client.post(path + "/confirm").status_code == 200
    return path


def deliver(app: Flask) -> int:
    with app.app_context():
        return deliver_due_notifications()


def notifications(app: Flask) -> list[GatewayNotification]:
    with app.app_context():
        rows = list(db.session.scalars(select(GatewayNotification)))
        db.session.expunge_all()
        return rows


def post_signed(
    app: Flask, method: str, biz: dict[str, str], private_pem: str | None = None
) -> requests.Response:
    """A hand-built request, signed with the merchant key unless another key is given."""
    settings = alipay_settings(app.config)
    params = {
        "app_id": settings.app_id,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": "2026-11-20 10:00:00",
        "version": "1.0",
        "biz_content": json.dumps(biz, separators=(",", ":")),
    }
    key = load_private_key(private_pem or settings.app_private_key_pem)
    params["sign"] = sign_params(params, key)
    return app.extensions["cashier.http"].post(GATEWAY_URL, data=params, timeout=5)


def sdk_client(keys_dir: Path) -> AliPay:
    """python-alipay-sdk in the merchant's seat, trusting the emulator's public key: an
    implementation of Alipay's algorithm independent of our own signing code."""
    return AliPay(
        appid="2021000000000001",
        app_notify_url=None,
        app_private_key_string=(keys_dir / "alipay_app_private.pem").read_text(),
        alipay_public_key_string=(keys_dir / "alipay_gateway_public.pem").read_text(),
        sign_type="RSA2",
    )
