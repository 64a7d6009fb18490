"""WeChat Pay's TRANSACTION.SUCCESS callback on the wire: a JSON event whose resource
is the paid transaction encrypted under the APIv3 key, signed in the Wechatpay-*
headers. Accepted when the answer is HTTP 200 or 204, whatever its body."""
from __future__ import annotations

from datetime import datetime

import requests

from app.gateway.identity import wechat_identity
from app.gateway.models import GatewayNotification
from app.gateway.outgoing import OutgoingRequest
from app.gateway.wechat_wire import (
    compact_json,
    encrypted_resource,
    rfc3339,
    signed_headers,
    transaction_json,
)

ACCEPTED_STATUSES = frozenset({200, 204})


def build_request(notification: GatewayNotification, moment: datetime) -> OutgoingRequest:
    """One attempt's POST. The event id and create_time stay those of the event; the
    resource is encrypted afresh and the body signed with this attempt's timestamp."""
    trade = notification.wechat_trade
    assert trade is not None and trade.paid_at is not None
    identity = wechat_identity()
    event = {
        "id": notification.notify_id,
        "create_time": rfc3339(notification.created_at),
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": encrypted_resource(
            compact_json(transaction_json(trade)), identity, "transaction", "transaction"
        ),
    }
    body = compact_json(event)
    headers = signed_headers(body, identity, moment)
    headers["Content-Type"] = "application/json"
    return OutgoingRequest(url=notification.notify_url, body=body.encode("utf-8"), headers=headers)


def accepted(response: requests.Response) -> bool:
    return response.status_code in ACCEPTED_STATUSES
