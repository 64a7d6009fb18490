"""Notifications signed by an independent implementation (python-alipay-sdk), playing
Alipay with the emulator's platform key that the app trusts in the tests."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from alipay import AliPay

from app.config import EMULATOR_ALIPAY_APP_ID, EMULATOR_ALIPAY_SELLER_ID
from app.money import format_yuan

KEYS = Path(__file__).parent / "keys"


def _sdk() -> AliPay:
    return AliPay(
        appid=EMULATOR_ALIPAY_APP_ID,
        app_notify_url=None,
        app_private_key_string=(KEYS / "alipay_platform_private.pem").read_text(),
        alipay_public_key_string=(KEYS / "alipay_app_public.pem").read_text(),
        sign_type="RSA2",
    )


def notification_fields(out_trade_no: str, amount_fen: int, notify_id: str = "n-1") -> dict[str, str]:
    return {
        "notify_time": "2026-11-20 10:03:05",
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "charset": "utf-8",
        "version": "1.0",
        "app_id": EMULATOR_ALIPAY_APP_ID,
        "seller_id": EMULATOR_ALIPAY_SELLER_ID,
        "out_trade_no": out_trade_no,
        "trade_no": "2026112022001400000001",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": format_yuan(amount_fen),
        "receipt_amount": format_yuan(amount_fen),
        "subject": "课程",
        "gmt_create": "2026-11-20 10:02:00",
        "gmt_payment": "2026-11-20 10:03:04",
    }


def signed_body(fields: dict[str, str], **changes_after_signing: str) -> bytes:
    """Form body signed over ``fields``; ``changes_after_signing`` tamper with it."""
    sign = dict(parse_qsl(_sdk().sign_data(dict(fields))))["sign"]
    return urlencode({**fields, "sign": sign, "sign_type": "RSA2", **changes_after_signing}).encode()
