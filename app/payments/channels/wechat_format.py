"""WeChat Pay API v3 text formats: times, signed messages, field limits, and the JSON a
callback may carry. Pure functions, shared by the adapter in `wechat.py`."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.payments.channels.base import in_utc_range

BEIJING = ZoneInfo("Asia/Shanghai")


def format_rfc3339(moment: datetime) -> str:
    """``2026-11-23T10:34:56+08:00``: the time format of every WeChat Pay v3 field."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: cannot tell which instant it is")
    return moment.astimezone(BEIJING).isoformat(timespec="seconds")


def parse_channel_json(text: str) -> Any:
    """JSON as a channel may send it, refused (ValueError) when it could not be stored or
    compared safely: nested deeper than Python recurses, or holding lone surrogates
    (``"\\ud800"``) that no database column accepts."""
    try:
        value = json.loads(text)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (RecursionError, UnicodeEncodeError):
        raise ValueError("JSON nested too deep or not encodable") from None
    return value


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 time with its offset; ValueError if it has none, or if the instant
    has no UTC equivalent."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("time without an offset")
    return in_utc_range(moment)


def truncate_utf8(text: str, max_bytes: int) -> str:
    """At most ``max_bytes`` of UTF-8, cut on a character boundary: WeChat Pay's field
    limits are safest read as bytes, and a Chinese character takes three."""
    encoded = text.encode("utf-8")[:max_bytes]
    return encoded.decode("utf-8", errors="ignore")


def request_message(method: str, path_with_query: str, timestamp: str, nonce: str, body: str) -> str:
    return f"{method}\n{path_with_query}\n{timestamp}\n{nonce}\n{body}\n"


def answer_message(timestamp: str, nonce: str, body: str) -> str:
    return f"{timestamp}\n{nonce}\n{body}\n"
