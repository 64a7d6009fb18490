"""WeChat Pay API v3 on the wire, as the platform writes it: the Authorization header it
reads, the signature headers it puts on every answer and callback, RFC 3339 times, and
the transaction / refund JSON it reports and notifies.

The platform signs ``TIMESTAMP\\nNONCE\\nBODY\\n`` with its private key and announces the
key by ``Wechatpay-Serial`` (the platform public key id). The merchant signs
``METHOD\\nPATH_WITH_QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`` with its own.
"""
from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.gateway.identity import WechatIdentity
from app.gateway.wechat_models import GatewayWechatRefund, GatewayWechatTrade
from app.payments.channels.crypto import aes_gcm_encrypt, rsa2_sign
from app.timeutil import as_aware, beijing

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
RESOURCE_NONCE_LENGTH = 12  # AEAD_AES_256_GCM's 96-bit nonce, as 12 ASCII characters
_NONCE_ALPHABET = string.ascii_letters + string.digits
_AUTH_PAIR_RE = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*(?:,|$)')
_AUTH_FIELDS = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")

TRADE_STATE_DESC = {
    "NOTPAY": "未支付",
    "SUCCESS": "支付成功",
    "CLOSED": "已关闭",
    "REFUND": "转入退款",
}


@dataclass(frozen=True)
class Authorization:
    mchid: str
    nonce_str: str
    signature: str
    timestamp: str
    serial_no: str


def parse_authorization(header: str) -> Authorization | None:
    """The five fields of a ``WECHATPAY2-SHA256-RSA2048`` header; None if malformed."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != SIGNATURE_TYPE:
        return None
    fields: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _AUTH_PAIR_RE.match(rest, position)
        if match is None or match.group(1) in fields:
            return None
        fields[match.group(1)] = match.group(2)
        position = match.end()
    if any(not fields.get(name) for name in _AUTH_FIELDS):
        return None
    return Authorization(**{name: fields[name] for name in _AUTH_FIELDS})


def request_message(method: str, path_with_query: str, auth: Authorization, body: str) -> bytes:
    return f"{method}\n{path_with_query}\n{auth.timestamp}\n{auth.nonce_str}\n{body}\n".encode()


def nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def rfc3339(moment: datetime) -> str:
    """A naive-UTC moment as WeChat writes times: Beijing, ``2026-11-20T10:00:00+08:00``."""
    return beijing(moment).isoformat(timespec="seconds")


def signed_headers(body: str, identity: WechatIdentity, moment: datetime) -> dict[str, str]:
    """The platform's signature headers over ``body`` ("" for an empty answer)."""
    timestamp = str(int(as_aware(moment).timestamp()))
    answer_nonce = nonce()
    message = f"{timestamp}\n{answer_nonce}\n{body}\n".encode()
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": answer_nonce,
        "Wechatpay-Serial": identity.platform_public_key_id,
        "Wechatpay-Signature": rsa2_sign(message, identity.platform_private_key),
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
    }


def transaction_json(trade: GatewayWechatTrade) -> dict[str, Any]:
    """A trade as the query answers it and as the TRANSACTION.SUCCESS callback carries
    it. Payment fields appear only once paid."""
    paid = trade.paid_at is not None
    amount: dict[str, Any] = {"total": trade.total_fen, "currency": "CNY"}
    answer: dict[str, Any] = {
        "appid": trade.app_id,
        "mchid": trade.mch_id,
        "out_trade_no": trade.out_trade_no,
        "trade_type": "NATIVE",
        "trade_state": trade.status,
        "trade_state_desc": TRADE_STATE_DESC[trade.status],
        "attach": "",
    }
    if paid:
        assert trade.paid_at is not None
        amount.update(payer_total=trade.total_fen, payer_currency="CNY")
        answer.update(
            transaction_id=trade.transaction_id,
            bank_type="OTHERS",  # the payer's change (零钱)
            success_time=rfc3339(trade.paid_at),
            payer={"openid": trade.payer_openid},
        )
    answer["amount"] = amount
    return answer


def refund_json(refund: GatewayWechatRefund) -> dict[str, Any]:
    """A refund as the refund API and the refund query answer it (always SUCCESS: the
    emulator refunds synchronously)."""
    trade = refund.trade
    return {
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "success_time": rfc3339(refund.created_at),
        "create_time": rfc3339(refund.created_at),
        "status": "SUCCESS",
        "funds_account": "AVAILABLE",
        "amount": {
            "total": trade.total_fen,
            "refund": refund.refund_fen,
            "payer_total": trade.total_fen,
            "payer_refund": refund.refund_fen,
            "settlement_refund": refund.refund_fen,
            "settlement_total": trade.total_fen,
            "discount_refund": 0,
            "currency": "CNY",
            "refund_fee": 0,
        },
    }


def refund_notification_json(refund: GatewayWechatRefund) -> dict[str, Any]:
    """The resource a REFUND.SUCCESS callback carries (encrypted): WeChat's refund
    notification, slimmer than ``refund_json`` and with ``refund_status`` for ``status``.
    """
    trade = refund.trade
    return {
        "mchid": trade.mch_id,
        "out_trade_no": trade.out_trade_no,
        "transaction_id": trade.transaction_id,
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id,
        "refund_status": "SUCCESS",
        # The emulator refunds synchronously: the refund succeeded when it was made.
        "success_time": rfc3339(refund.created_at),
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": trade.total_fen,
            "refund": refund.refund_fen,
            "payer_total": trade.total_fen,
            "payer_refund": refund.refund_fen,
        },
    }


def encrypted_resource(
    plaintext: str, identity: WechatIdentity, original_type: str, associated_data: str
) -> dict[str, str]:
    """A callback ``resource``: AEAD_AES_256_GCM under the APIv3 key, fresh nonce."""
    resource_nonce = nonce(RESOURCE_NONCE_LENGTH)
    return {
        "original_type": original_type,
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": aes_gcm_encrypt(
            identity.apiv3_key,
            resource_nonce.encode("ascii"),
            plaintext.encode("utf-8"),
            associated_data.encode("utf-8"),
        ),
        "associated_data": associated_data,
        "nonce": resource_nonce,
    }
