"""The canonical form of a receipt: the exact bytes that are hashed and signed.

Outsiders reimplement this (README.md, "Receipts"), so the rule is short and fixed:
the receipt is one JSON object, written with its keys sorted, no whitespace between
tokens (separators "," and ":"), non-ASCII characters as themselves (not \\u escapes),
encoded in UTF-8; every number is an integer (money in fen). For these receipts (ASCII
keys, integer numbers, no floats) it is the same text as RFC 8785 (JCS) produces.

Pure helpers: no Flask, no database.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")


class NotCanonical(ValueError):
    """Text that is not a receipt in canonical form; ``code`` says why."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def canonical_json(receipt: dict[str, Any]) -> str:
    """The canonical text of ``receipt`` (see the module docstring)."""
    _check_values(receipt)
    return json.dumps(receipt, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _check_values(value: Any) -> None:
    # Floats have several spellings (1.0, 1e0): a receipt that carried one could not be
    # rewritten byte for byte by an outsider, so money and counts are integers only.
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotCanonical("not_canonical")
            _check_values(item)
        return
    if isinstance(value, list):
        for item in value:
            _check_values(item)
        return
    raise NotCanonical("not_canonical")


def _refuse_constant(name: str) -> Any:
    raise NotCanonical("malformed")  # NaN, Infinity: not JSON


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    fields = dict(pairs)
    if len(fields) != len(pairs):
        # Two readers might keep different copies of a repeated key.
        raise NotCanonical("not_canonical")
    return fields


def parse_canonical(text: str) -> dict[str, Any]:
    """The receipt ``text`` holds, if it is one JSON object in canonical form.

    Raises NotCanonical with code ``malformed`` (not a JSON object) or ``not_canonical``
    (JSON, but not written exactly as `canonical_json` writes it).
    """
    try:
        receipt = json.loads(text, object_pairs_hook=_no_duplicate_keys,
                             parse_constant=_refuse_constant, parse_float=_refuse_float)
    except NotCanonical:
        raise
    except (ValueError, RecursionError):
        raise NotCanonical("malformed") from None
    if not isinstance(receipt, dict):
        raise NotCanonical("malformed")
    if canonical_json(receipt) != text:
        raise NotCanonical("not_canonical")
    return receipt


def _refuse_float(text: str) -> Any:
    raise NotCanonical("not_canonical")


def beijing_iso(moment: datetime) -> str:
    """A stored naive-UTC moment as ISO 8601 in Beijing time, to the second:
    ``2026-11-20T10:00:00+08:00``."""
    aware = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    return aware.astimezone(BEIJING).isoformat(timespec="seconds")


def mask_email(email: str) -> str:
    """The learner as the public verify page may show them: the first character of the
    mailbox, then ``***``, then the domain (``a***@example.com``). The mask has one
    length whatever the mailbox, so it does not tell the mailbox's length either."""
    mailbox, at, domain = email.partition("@")
    if not at:
        return "***"
    return f"{mailbox[:1]}***@{domain}"
