"""What the channels hand us, in their formats: QR code texts, trade and refund numbers,
and the bodies of payment notifications as the inbox stores them."""
from __future__ import annotations

import json
from datetime import datetime

from app.benchdata.history import BEIJING_OFFSET, OrderPlan


def qr_code(channel: str, bits: int) -> str:
    if channel == "alipay":
        return f"https://qr.alipay.com/bax0{bits & (2**80 - 1):020x}"
    return f"weixin://wxpay/bizpayurl?pr={bits & (2**40 - 1):010x}"


def trade_no_of(channel: str, plan: OrderPlan, sequence: int) -> str:
    """The channel's number of the order's ``sequence``-th attempt, 28 digits as theirs."""
    day = f"{(plan.placed_at + BEIJING_OFFSET):%Y%m%d}"
    if channel == "alipay":
        return f"{day}2200{plan.number * 100 + sequence:016d}"
    return f"4200001234{day}{plan.number * 100 + sequence:010d}"


def refund_no_of(channel: str, plan: OrderPlan, trade_no: str, refunded_at: datetime) -> str:
    """Alipay answers a refund with the trade's own number; WeChat Pay gives a refund id."""
    if channel == "alipay":
        return trade_no
    return f"50300{(refunded_at + BEIJING_OFFSET):%Y%m%d}{plan.number:010d}{1:06d}"


def notification_body(channel: str, notify_id: str, out_trade_no: str, trade_no: str, amount_fen: int,
                      paid_at: datetime, received_at: datetime) -> str:
    """The notification's shape, with the fields the inbox row repeats. Not signed
    (nothing verifies a stored body again), nor encrypted: the WeChat resource says so."""
    if channel == "alipay":
        # Form-encoded as `urlencode` would (only the times' space and colons need it).
        return (f"notify_time={received_at + BEIJING_OFFSET:%Y-%m-%d+%H%%3A%M%%3A%S}"
                f"&notify_type=trade_status_sync&notify_id={notify_id}&trade_no={trade_no}"
                f"&out_trade_no={out_trade_no}&trade_status=TRADE_SUCCESS"
                f"&total_amount={amount_fen // 100}.{amount_fen % 100:02d}"
                f"&gmt_payment={paid_at + BEIJING_OFFSET:%Y-%m-%d+%H%%3A%M%%3A%S}"
                "&sign_type=RSA2&sign=bench-seed-unsigned")
    return json.dumps({
        "id": notify_id, "create_time": f"{paid_at + BEIJING_OFFSET:%Y-%m-%dT%H:%M:%S}+08:00",
        "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
        "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                     "ciphertext": "bench-seed-not-encrypted", "associated_data": "transaction",
                     "nonce": notify_id[:12]},
    }, ensure_ascii=False, separators=(",", ":"))
