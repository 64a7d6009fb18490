"""The merchant's seat against the emulated WeChat Pay, built on the independent
``wechatpayv3`` package: it signs our requests and checks the platform's signatures and
encryption, so none of the emulator's own wire code grades itself."""
from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Flask
from flask.testing import FlaskClient
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from wechatpayv3.utils import aes_decrypt, load_private_key, load_public_key, rsa_sign, rsa_verify

from app.config import EMULATOR_WECHAT_APP_ID, EMULATOR_WECHAT_CERT_SERIAL, EMULATOR_WECHAT_MCH_ID
from app.timeutil import as_aware
from tests.conftest import TEST_BASE_URL, Clock

API_BASE = TEST_BASE_URL + "/gateway/wechat"
MERCHANT_HOST = "http://merchant.test"
NOTIFY_URL = MERCHANT_HOST + "/notify/wechat"
MCH_ID = EMULATOR_WECHAT_MCH_ID
APP_ID = EMULATOR_WECHAT_APP_ID
OUT_TRADE_NO = "W20261120000001"
DESCRIPTION = "Python 入门课"


@dataclass
class Delivery:
    url: str
    headers: dict[str, str]
    body: str


class CallbackRecorder(BaseAdapter):
    """A merchant notify endpoint on MERCHANT_HOST: records every POST and answers the
    scripted statuses in turn (the last one repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        super().__init__()
        self.statuses = statuses
        self.deliveries: list[Delivery] = []

    def send(self, request: requests.PreparedRequest, **_kwargs: Any) -> requests.Response:
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        self.deliveries.append(Delivery(request.url or "", dict(request.headers), body.decode()))
        response = requests.Response()
        response.status_code = self.statuses[min(len(self.deliveries), len(self.statuses)) - 1]
        response.raw = io.BytesIO(b"")
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(delivery.body) for delivery in self.deliveries]


def callback_recorder(app: Flask, *statuses: int) -> CallbackRecorder:
    recorder = CallbackRecorder(list(statuses) or [204])
    app.extensions["cashier.gateway_http"].mount(MERCHANT_HOST, recorder)
    return recorder


@dataclass
class Merchant:
    """Signs requests as the merchant does, with the app clock's time."""

    app: Flask
    clock: Clock
    keys_dir: Path
    mch_id: str = MCH_ID
    serial_no: str = EMULATOR_WECHAT_CERT_SERIAL
    private_pem: str | None = None
    timeout: float | None = 5
    _keys: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pem = self.private_pem or (self.keys_dir / "wechat_mch_private.pem").read_text()
        self._keys["private"] = load_private_key(pem)
        self._keys["platform"] = load_public_key(
            (self.keys_dir / "wechat_platform_public.pem").read_text()
        )
        self._keys["apiv3"] = (self.keys_dir / "wechat_apiv3.key").read_text().strip()

    def authorization(
        self, method: str, signed_path: str, body: str, timestamp: int | None = None
    ) -> str:
        stamp = str(timestamp if timestamp is not None else int(as_aware(self.clock()).timestamp()))
        nonce = "NONCE" + stamp
        message = f"{method}\n{signed_path}\n{stamp}\n{nonce}\n{body}\n"
        signature = rsa_sign(self._keys["private"], message)
        return (
            f'WECHATPAY2-SHA256-RSA2048 mchid="{self.mch_id}",nonce_str="{nonce}",'
            f'signature="{signature}",timestamp="{stamp}",serial_no="{self.serial_no}"'
        )

    def call(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        signed_path: str | None = None,
        timestamp: int | None = None,
        raw_body: str | None = None,
    ) -> requests.Response:
        """Send ``path`` (``/v3/…?query``) to the emulator; sign ``signed_path`` if given."""
        if raw_body is not None:
            body = raw_body
        elif payload is None:
            body = ""
        else:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        headers = {
            "Authorization": self.authorization(method, signed_path or path, body, timestamp),
            "Accept": "application/json",
        }
        if body:
            headers["Content-Type"] = "application/json"
        session: requests.Session = self.app.extensions["cashier.http"]
        return session.request(
            method, API_BASE + path, data=body.encode("utf-8") if body else None,
            headers=headers, timeout=self.timeout,
        )

    def verifies(self, response: requests.Response) -> bool:
        """Whether the answer carries a valid platform signature over its body."""
        headers = response.headers
        return headers.get("Wechatpay-Serial", "").startswith("PUB_KEY_ID_") and rsa_verify(
            headers["Wechatpay-Timestamp"],
            headers["Wechatpay-Nonce"],
            response.content.decode("utf-8"),
            headers["Wechatpay-Signature"],
            self._keys["platform"],
        )

    def callback_verifies(self, delivery: Delivery) -> bool:
        headers = CaseInsensitiveDict(delivery.headers)
        return rsa_verify(
            headers["Wechatpay-Timestamp"],
            headers["Wechatpay-Nonce"],
            delivery.body,
            headers["Wechatpay-Signature"],
            self._keys["platform"],
        )

    def decrypt(self, resource: dict[str, str]) -> dict[str, Any] | None:
        plaintext = aes_decrypt(
            resource["nonce"],
            resource["ciphertext"],
            resource["associated_data"],
            self._keys["apiv3"],
        )
        return None if plaintext is None else json.loads(plaintext)

    # --- the calls, with sensible defaults -------------------------------------------

    def native(
        self, out_trade_no: str = OUT_TRADE_NO, total: int = 9450, **overrides: Any
    ) -> requests.Response:
        payload: dict[str, Any] = {
            "appid": APP_ID,
            "mchid": MCH_ID,
            "description": DESCRIPTION,
            "out_trade_no": out_trade_no,
            "notify_url": NOTIFY_URL,
            "amount": {"total": total, "currency": "CNY"},
        }
        payload.update(overrides)
        return self.call("POST", "/v3/pay/transactions/native", payload)

    def query(self, out_trade_no: str = OUT_TRADE_NO) -> requests.Response:
        return self.call("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={MCH_ID}")

    def close(self, out_trade_no: str = OUT_TRADE_NO) -> requests.Response:
        return self.call(
            "POST", f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close", {"mchid": MCH_ID}
        )

    def refund(
        self, out_refund_no: str, refund: int, total: int = 9450,
        out_trade_no: str = OUT_TRADE_NO, **overrides: Any,
    ) -> requests.Response:
        payload: dict[str, Any] = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "reason": "课程退款",
            "amount": {"refund": refund, "total": total, "currency": "CNY"},
        }
        payload.update(overrides)
        return self.call("POST", "/v3/refund/domestic/refunds", payload)


def code_path(response: requests.Response) -> str:
    return urlsplit(response.json()["code_url"]).path


def pay_wechat(merchant: Merchant, client: FlaskClient, out_trade_no: str = OUT_TRADE_NO,
               total: int = 9450) -> str:
    """Order and confirm on the sandbox page; the page's path."""
    answer = merchant.native(out_trade_no, total)
    assert answer.status_code == 200, answer.text
    path = code_path(answer)
    assert client.post(path + "/confirm").status_code == 200
    return path


def wait_for_late_answers(timeout: float = 5.0) -> None:
    """Join the in-process transport's threads still answering after the client gave up
    (``api_timeout``), so nothing touches the database after the test."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and thread.name.endswith("(run)"):
            thread.join(timeout)
