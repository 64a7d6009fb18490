"""How platform events are signed, and how a receiver checks them. Pure: standard library only.

The signed string is ``f"{timestamp}.{body}"``: the Unix time in seconds as sent in
``X-CourseCashier-Timestamp``, a dot, and the exact request body bytes. The signature
header is ``X-CourseCashier-Signature: v1=<hex HMAC-SHA256(secret, signed string)>``.
Binding the timestamp lets a receiver refuse a replay of an old, validly signed request.
"""
from __future__ import annotations

import hashlib
import hmac

EVENT_HEADER = "X-CourseCashier-Event"
DELIVERY_HEADER = "X-CourseCashier-Delivery"
TIMESTAMP_HEADER = "X-CourseCashier-Timestamp"
SIGNATURE_HEADER = "X-CourseCashier-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp``: ``"v1=<hex>"``."""
    signed = str(int(timestamp)).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes,
    signature_header: str,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """Whether a received event is authentic and fresh.

    ``timestamp`` and ``signature_header`` are the raw header values, ``body`` the raw
    request body, ``now`` the receiver's Unix time. False for a malformed timestamp, one
    more than ``tolerance`` seconds away from ``now`` (either way), or a signature that
    does not match; the comparison is constant-time. The header may carry several
    comma-separated ``v1=`` values (during a secret rotation, say): one match suffices.
    """
    try:
        sent_at = int(str(timestamp).strip())
    except ValueError:
        return False
    if abs(now - sent_at) > tolerance:
        return False
    expected = signature(secret, sent_at, body)
    candidates = [part.strip() for part in (signature_header or "").split(",")]
    matched = False
    for candidate in candidates:
        # Every candidate is compared, so the time taken says nothing about which matched.
        matched |= hmac.compare_digest(candidate.encode("utf-8", "replace"), expected.encode("ascii"))
    return matched
