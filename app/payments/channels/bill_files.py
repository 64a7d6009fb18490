"""What both channels' daily trade bills have in common once downloaded: a bounded
download, amounts and times as the files write them, and the error for a file that
cannot be believed.

Plain Python like every channel module; the channel-specific layouts are in
``alipay_bill`` and ``wechat_bill``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import requests

from app.money import MoneyFormatError, parse_yuan, round_fen
from app.payments.channels.base import ChannelError, UnknownResult, in_utc_range

BEIJING = ZoneInfo("Asia/Shanghai")
BILL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# A day's bill of a large merchant runs to some megabytes; anything near this is not a
# bill we asked for, and reading it whole could take the worker's memory.
MAX_BILL_BYTES = 64 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024
# A signed decimal as the files write fees and totals: fees to five decimals by WeChat
# Pay (``0.05940``), to two by Alipay; totals to two.
_DECIMAL_RE = re.compile(r"(-?)([0-9]{1,12})\.([0-9]{1,5})")
# A count of rows; twelve digits keep int() far from its limit on digits.
_COUNT_RE = re.compile(r"[0-9]{1,12}")


class MalformedBill(ChannelError):
    """A bill file that cannot be read as the channel's format: a broken archive, a
    wrong encoding, a hash that does not match, missing columns, amounts that are not
    amounts, totals that disagree with the lines, or a file over ``MAX_BILL_BYTES``.

    Nothing of such a file is used; asking again may give a good copy.
    """


def day_has_ended(bill_date: date, now: datetime) -> bool:
    """Whether the Beijing calendar day ``bill_date`` is over at the aware ``now``."""
    next_midnight = datetime.combine(bill_date + timedelta(days=1), datetime.min.time(), BEIJING)
    return now >= next_midnight


@dataclass(frozen=True)
class Download:
    status: int
    content_type: str
    body: bytes


def fetch_bounded(
    session: requests.Session,
    url: str,
    what: str,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> Download:
    """GET ``url`` and read its body, at most ``MAX_BILL_BYTES`` of it.

    Network trouble and server errors are UnknownResult (ask again later); a body over
    the limit is MalformedBill. Other statuses are returned for the caller to judge.
    """
    try:
        response = session.get(url, headers=headers, timeout=timeout, stream=True)
    except requests.RequestException as exc:
        raise UnknownResult(f"{what}: {type(exc).__name__}") from exc
    try:
        if response.status_code >= 500 or response.status_code == 429:
            raise UnknownResult(f"{what}: HTTP {response.status_code}")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_BILL_BYTES:
            raise MalformedBill(f"{what}: bill of {declared} bytes is over the limit")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(_CHUNK_BYTES):
            size += len(chunk)
            if size > MAX_BILL_BYTES:
                raise MalformedBill(f"{what}: bill over {MAX_BILL_BYTES} bytes")
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise UnknownResult(f"{what}: {type(exc).__name__} while reading") from exc
    finally:
        response.close()
    content_type = response.headers.get("Content-Type", "")
    return Download(response.status_code, content_type, b"".join(chunks))


def signed_fen(text: str, what: str) -> int:
    """``"94.50"`` -> 9450, ``"-40.00"`` -> -4000: bill amounts carry their direction."""
    negative = text.startswith("-")
    try:
        fen = parse_yuan(text[1:] if negative else text)
    except MoneyFormatError:
        raise MalformedBill(f"{what}: not an amount: {text!r}") from None
    return -fen if negative else fen


def fee_fen(text: str, what: str, sign: int) -> int:
    """A fee as written (``"-0.57"``, ``"0.05940"``) -> whole fen, rounded half up once,
    without its sign: BillLine fees are positive whichever way the money went.

    ``sign`` (1 or -1) is the direction the channel writes this line's fee in; each
    channel's convention is its ``_FEE_SIGNS``. A fee the other way is MalformedBill:
    dropping its sign would turn a fee given back into one charged. Zero fits both.
    """
    match = _DECIMAL_RE.fullmatch(text)
    if match is None:
        raise MalformedBill(f"{what}: not a fee: {text!r}")
    if Decimal(text) * sign < 0:
        expected = "positive" if sign > 0 else "negative"
        raise MalformedBill(f"{what}: fee {text!r} has the wrong sign (expected {expected} or zero)")
    return round_fen(Decimal(f"{match.group(2)}.{match.group(3)}") * 100)


def signed_decimal(text: str, what: str) -> Decimal:
    """A total as written, exactly (for comparing a file's totals with its lines)."""
    if _DECIMAL_RE.fullmatch(text) is None:
        raise MalformedBill(f"{what}: not an amount: {text!r}")
    return Decimal(text)


def row_count(text: str, what: str) -> int:
    """A count of rows as written (``"2"``), strictly: ASCII digits only."""
    if _COUNT_RE.fullmatch(text) is None:
        raise MalformedBill(f"{what}: not a count: {text!r}")
    return int(text)


def bill_time(text: str, what: str) -> datetime:
    """``"2026-11-20 10:00:00"`` in Beijing time -> an aware datetime."""
    try:
        return in_utc_range(datetime.strptime(text, BILL_TIME_FORMAT).replace(tzinfo=BEIJING))
    except ValueError:
        raise MalformedBill(f"{what}: not a time: {text!r}") from None


def column_index(header: list[str], required: tuple[str, ...], what: str) -> dict[str, int]:
    """Where each required column is. The channels add columns over time and say to read
    them by name, so extra ones are fine; a missing or repeated one is not."""
    positions: dict[str, int] = {}
    for position, name in enumerate(header):
        if name in positions:
            raise MalformedBill(f"{what}: column {name!r} appears twice")
        positions[name] = position
    missing = [name for name in required if name not in positions]
    if missing:
        raise MalformedBill(f"{what}: missing columns {', '.join(missing)}")
    return positions
