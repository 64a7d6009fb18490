"""WeChat Pay's callbacks on the wire: a JSON event whose resource is encrypted under the
APIv3 key, signed in the Wechatpay-* headers. A notification owned by a paid trade is a
TRANSACTION.SUCCESS event carrying the transaction; one owned by a refund is a
REFUND.SUCCESS event carrying WeChat's refund notification. Either is accepted when the
answer is HTTP 200 or 204, whatever its body."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import requests

from app.gateway.identity import wechat_identity
from app.gateway.models import GatewayNotification
from app.gateway.outgoing import OutgoingRequest
from app.gateway.wechat_wire import (
    compact_json,
    encrypted_resource,
    refund_notification_json,
    rfc3339,
    signed_headers,
    transaction_json,
)

ACCEPTED_STATUSES = frozenset({200, 204})


def _event(notification: GatewayNotification) -> tuple[str, str, str, dict[str, Any]]:
    """(event_type, summary, original_type, plaintext resource) for the owner of
    ``notification``; the associated data is the original type, as WeChat sends it."""
    refund = notification.wechat_refund
    if refund is not None:
        return "REFUND.SUCCESS", "退款成功", "refund", refund_notification_json(refund)
    trade = notification.wechat_trade
    assert trade is not None and trade.paid_at is not None
    return "TRANSACTION.SUCCESS", "支付成功", "transaction", transaction_json(trade)


def build_request(notification: GatewayNotification, moment: datetime) -> OutgoingRequest:
    """One attempt's POST. The event id and create_time stay those of the event; the
    resource is encrypted afresh and the body signed with this attempt's timestamp."""
    identity = wechat_identity()
    event_type, summary, original_type, resource = _event(notification)
    event = {
        "id": notification.notify_id,
        "create_time": rfc3339(notification.created_at),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": encrypted_resource(
            compact_json(resource), identity, original_type, original_type
        ),
    }
    body = compact_json(event)
    headers = signed_headers(body, identity, moment)
    headers["Content-Type"] = "application/json"
    return OutgoingRequest(url=notification.notify_url, body=body.encode("utf-8"), headers=headers)


def accepted(response: requests.Response) -> bool:
    return response.status_code in ACCEPTED_STATUSES
