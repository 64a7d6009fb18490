"""Alipay's asynchronous notification on the wire: a form POST signed with the
emulator's key (``sign`` and ``sign_type`` left out of the signed text), accepted only
when the answer body is exactly ``success``."""
from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

import requests

from app.gateway.identity import alipay_identity
from app.gateway.models import GatewayAlipayTrade, GatewayNotification
from app.gateway.outgoing import OutgoingRequest
from app.money import format_yuan
from app.payments.channels.alipay import format_beijing_time, signing_content
from app.payments.channels.crypto import rsa2_sign
from app.timeutil import as_aware


def _beijing_text(moment: datetime) -> str:
    return format_beijing_time(as_aware(moment))


def notification_form(
    trade: GatewayAlipayTrade, notify_id: str, notify_time: datetime
) -> dict[str, str]:
    """The signed form fields of a TRADE_SUCCESS notification for a paid ``trade``."""
    identity = alipay_identity()
    amount = format_yuan(trade.total_amount_fen)
    assert trade.paid_at is not None and trade.opened_at is not None and trade.trade_no
    fields = {
        "notify_time": _beijing_text(notify_time),
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "app_id": trade.app_id,
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "buyer_logon_id": trade.buyer_logon_id or "",
        "seller_id": identity.seller_id,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": amount,
        "receipt_amount": amount,
        "buyer_pay_amount": amount,
        "invoice_amount": amount,
        "gmt_create": _beijing_text(trade.opened_at),
        "gmt_payment": _beijing_text(trade.paid_at),
        "subject": trade.subject,
    }
    content = signing_content(fields, exclude=("sign", "sign_type"))
    fields["sign"] = rsa2_sign(content.encode("utf-8"), identity.gateway_private_key)
    return fields


def build_request(notification: GatewayNotification, moment: datetime) -> OutgoingRequest:
    """One attempt's POST, freshly signed with ``notify_time`` = ``moment``."""
    assert notification.alipay_trade is not None
    form = notification_form(notification.alipay_trade, notification.notify_id, moment)
    return OutgoingRequest(
        url=notification.notify_url,
        body=urlencode(form).encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )


def accepted(response: requests.Response) -> bool:
    return response.text == "success"
