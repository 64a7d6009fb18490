"""WeChat Pay callbacks and answers built independently of our code: signed with the
`wechatpayv3` package's RSA helper and encrypted with `cryptography`'s AES-GCM, playing
WeChat Pay with the platform key that the app trusts in the tests."""
from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3.utils import load_private_key, rsa_sign

from app.config import EMULATOR_WECHAT_APP_ID, EMULATOR_WECHAT_MCH_ID, EMULATOR_WECHAT_PUBLIC_KEY_ID

KEYS = Path(__file__).parent / "keys"
APIV3_KEY = (KEYS / "wechat_apiv3.key").read_text().strip()


def platform_private_pem() -> str:
    return (KEYS / "wechat_platform_private.pem").read_text()


def transaction(out_trade_no: str, amount_fen: int, **changes: Any) -> dict[str, Any]:
    """A paid Native transaction as WeChat Pay describes it."""
    fields: dict[str, Any] = {
        "appid": EMULATOR_WECHAT_APP_ID,
        "mchid": EMULATOR_WECHAT_MCH_ID,
        "out_trade_no": out_trade_no,
        "transaction_id": "4200002026112300000000000001",
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": "2026-11-20T10:03:04+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": amount_fen, "payer_total": amount_fen, "currency": "CNY",
                   "payer_currency": "CNY"},
    }
    fields.update(changes)
    return fields


def encrypt(plaintext: str, key: str = APIV3_KEY, associated_data: str = "transaction") -> dict[str, str]:
    nonce = secrets.token_hex(6)  # 12 ASCII characters, as WeChat Pay sends
    sealed = AESGCM(key.encode()).encrypt(nonce.encode(), plaintext.encode(), associated_data.encode())
    return {
        "original_type": "transaction",
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def callback(
    paid: dict[str, Any],
    *,
    at: datetime,
    event_id: str = "EV-2026112300000001",
    apiv3_key: str = APIV3_KEY,
    tamper_ciphertext: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """A signed TRANSACTION.SUCCESS callback: (body, headers)."""
    resource = encrypt(json.dumps(paid, ensure_ascii=False), apiv3_key)
    if tamper_ciphertext:
        raw = bytearray(base64.b64decode(resource["ciphertext"]))
        raw[0] ^= 0x01
        resource["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    event = {
        "id": event_id,
        "create_time": "2026-11-20T10:03:05+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": resource,
    }
    body = json.dumps(event, ensure_ascii=False)
    return body.encode(), signed_headers(body, at)


def signed_headers(body: str, at: datetime, serial: str = EMULATOR_WECHAT_PUBLIC_KEY_ID) -> dict[str, str]:
    moment = at if at.tzinfo else at.replace(tzinfo=timezone.utc)  # naive means UTC here
    timestamp = str(int(moment.timestamp()))
    nonce = secrets.token_hex(16)
    signature = rsa_sign(load_private_key(platform_private_pem()), f"{timestamp}\n{nonce}\n{body}\n")
    return {
        "Content-Type": "application/json",
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }


def refund_callback(
    out_trade_no: str, out_refund_no: str, amount_fen: int, *, at: datetime,
    event_id: str = "EV-2026112300000099",
) -> tuple[bytes, dict[str, str]]:
    """A signed REFUND.SUCCESS callback: (body, headers)."""
    refund = {
        "mchid": EMULATOR_WECHAT_MCH_ID,
        "out_trade_no": out_trade_no,
        "transaction_id": "4200002026112300000000000001",
        "out_refund_no": out_refund_no,
        "refund_id": "50300002026112300000000000001",
        "refund_status": "SUCCESS",
        "success_time": "2026-11-20T10:05:00+08:00",
        "user_received_account": "支付用户零钱",
        "amount": {"total": amount_fen, "refund": amount_fen, "payer_total": amount_fen,
                   "payer_refund": amount_fen},
    }
    resource = encrypt(json.dumps(refund, ensure_ascii=False), associated_data="refund")
    resource["original_type"] = "refund"
    event = {
        "id": event_id,
        "create_time": "2026-11-20T10:05:01+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "REFUND.SUCCESS",
        "summary": "退款成功",
        "resource": resource,
    }
    body = json.dumps(event, ensure_ascii=False)
    return body.encode(), signed_headers(body, at)
