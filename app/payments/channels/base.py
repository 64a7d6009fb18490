"""The contract between the payment services and a payment channel.

Channels are plain Python: no Flask, no database, no models. They receive a settings
dataclass and an HTTP session, and exchange the frozen dataclasses below with the
services. Preparing a charge never moves money; only the learner's confirmation at the
channel does, and we learn of it from a verified notification or an active query.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Mapping, Protocol


class TradeState(str, enum.Enum):
    """What a channel says about one out_trade_no."""

    NOT_FOUND = "not_found"  # the channel has no such trade (e.g. QR never scanned)
    PENDING = "pending"  # created at the channel, waiting for the payer
    PAID = "paid"  # money received
    CLOSED = "closed"  # closed or expired without payment, or fully refunded


@dataclass(frozen=True)
class ChargeRequest:
    out_trade_no: str
    amount_fen: int
    subject: str
    expires_at: datetime  # timezone-aware; the order deadline shared with the channel
    notify_url: str


@dataclass(frozen=True)
class ChargeIntent:
    out_trade_no: str
    qr_code: str  # the text to render as a QR code (a URL the payer's app opens)


@dataclass(frozen=True)
class TradeStatus:
    out_trade_no: str
    state: TradeState
    amount_fen: int | None = None
    channel_trade_no: str | None = None
    paid_at: datetime | None = None
    # The channel reports that money of this trade has already gone back: WeChat Pay's
    # trade_state REFUND ("转入退款"). False says nothing: Alipay's query cannot tell a
    # partly refunded trade from one never refunded.
    refunded: bool = False


@dataclass(frozen=True)
class Notification:
    """A verified asynchronous notification, already checked against our merchant ids."""

    channel: str
    notify_id: str  # the channel's id of this notification: our inbox dedupe key
    out_trade_no: str
    channel_trade_no: str
    state: TradeState
    amount_fen: int
    currency: str
    paid_at: datetime | None
    raw: Mapping[str, str] = field(repr=False, compare=False)
    # When the payer opened the trade at the channel (Alipay's gmt_create, set when the
    # QR is scanned). None when the channel does not say: WeChat Pay Native never does.
    opened_at: datetime | None = None


class RefundState(str, enum.Enum):
    """What a channel says about one out_refund_no."""

    PROCESSING = "processing"  # accepted; the money is on its way back (query later)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the channel gave up (e.g. the payer's account is closed)


@dataclass(frozen=True)
class RefundRequest:
    out_trade_no: str
    out_refund_no: str  # ours, unique per refund: repeating it never refunds twice
    amount_fen: int
    total_fen: int  # the amount of the paid trade, which WeChat Pay wants restated
    reason: str
    notify_url: str | None = None  # where WeChat Pay sends REFUND.* callbacks


@dataclass(frozen=True)
class RefundNotification:
    """A verified callback about a refund: a prompt to ask the channel, never taken as
    the final word on its own (the refund is confirmed by query)."""

    channel: str
    out_trade_no: str
    out_refund_no: str
    state: RefundState
    amount_fen: int


@dataclass(frozen=True)
class RefundResult:
    out_refund_no: str
    state: RefundState
    amount_fen: int
    channel_refund_no: str | None = None
    refunded_at: datetime | None = None


class BillKind(str, enum.Enum):
    PAYMENT = "payment"  # money the payer paid us
    REFUND = "refund"  # money we gave back


@dataclass(frozen=True)
class BillLine:
    """One line of a channel's daily trade bill, in our terms (fen, aware times).

    A payment line names the trade; a refund line names the trade it refunds and our
    out_refund_no. Amounts and fees are positive whichever way the money went: the fee
    is what the channel kept of a payment, or what it gave back with a refund.
    """

    kind: BillKind
    out_trade_no: str
    channel_trade_no: str
    amount_fen: int
    fee_fen: int
    state: str  # "succeeded" for completed lines; a refund line may be "processing" or "failed"
    occurred_at: datetime  # timezone-aware: when the channel completed it
    out_refund_no: str | None = None
    channel_refund_no: str | None = None


class ChannelError(Exception):
    """Base of every error a channel raises."""


class UnknownResult(ChannelError):
    """The channel's answer is unknown (network error, timeout, system busy).

    The outcome must be learnt by a query, never guessed.
    """


class BillNotReady(ChannelError):
    """The channel has no bill for that day yet (the day is not over, or the bill is
    still being prepared); ask again later. Alipay says isp.bill_not_exist, WeChat Pay
    STATEMENT_CREATING (or NO_STATEMENT_EXIST about a day that is not over)."""


class SignatureError(ChannelError):
    """A signature did not verify, or the signed text could not be parsed."""


class NotificationRejected(ChannelError):
    """A notification with a valid signature that is not for us or is malformed."""


class ChannelRefused(ChannelError):
    """The channel answered and refused the request (a business error).

    ``verified`` is False for a refusal that carried no signature: it may stop a
    request, but what it says about a trade (for example "no such order") is not proof.
    """

    def __init__(self, code: str, message: str, verified: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.verified = verified


@dataclass(frozen=True)
class NotifyAnswer:
    """What the notify endpoint must answer, in the channel's own words."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


class PaymentChannel(Protocol):
    name: str
    notify_content_type: str  # the media type of its callbacks; others are refused

    def precreate(self, charge: ChargeRequest) -> ChargeIntent: ...

    def query(self, out_trade_no: str) -> TradeStatus: ...

    def close(self, out_trade_no: str) -> TradeState: ...

    def refund(self, refund: RefundRequest) -> RefundResult: ...

    def query_refund(self, out_trade_no: str, out_refund_no: str) -> RefundResult | None: ...

    def download_bill(self, bill_date: date) -> list[BillLine]:
        """The channel's trade bill of ``bill_date``, a calendar day in Beijing time
        (UTC+8), as both channels cut their bills: every payment and every refund the
        channel completed that day, in the file's order; [] for a day without any.

        Raises BillNotReady while the bill does not exist yet, UnknownResult on network
        trouble or a server error, SignatureError for an answer that does not verify,
        ChannelRefused for other refusals, and ``bill_files.MalformedBill`` for a file
        that cannot be believed (broken archive, encoding, hash, columns, amounts or
        totals, or over the size limit). No partial bill is ever returned.
        """
        ...

    def parse_notification(
        self, body: bytes, headers: Mapping[str, str]
    ) -> Notification | RefundNotification: ...

    def accepted_answer(self) -> NotifyAnswer: ...

    def rejected_answer(self, reason: str) -> NotifyAnswer: ...

    def unavailable_answer(self) -> NotifyAnswer: ...


# The columns that keep a channel's identifiers (dedupe key, trade numbers) are bounded
# ASCII; anything else could only come from a faulty channel and would fail to store.
_IDENTIFIER_RE = re.compile(r"[\x21-\x7e]{1,64}")


def is_identifier(value: object) -> bool:
    """A channel identifier we can store: 1 to 64 printable ASCII characters, no blanks."""
    return isinstance(value, str) and _IDENTIFIER_RE.fullmatch(value) is not None


def in_utc_range(moment: datetime) -> datetime:
    """``moment`` if it has a UTC equivalent (storage is naive UTC); ValueError for
    instants such as year 1 in the morning, which only a faulty channel would send."""
    try:
        moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("time out of range") from None
    return moment
