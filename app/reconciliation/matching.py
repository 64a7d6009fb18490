"""Matching one day's bill against our records. Pure: no Flask, no database.

The run for Beijing day D checks every line of bill D against our record of the same
key, whatever day we recorded it on (a payment by out_trade_no, a refund by
out_refund_no). It also expects on the channel's side every record we completed in
[D 00:00 − buffer, D+1 00:00 − buffer) Beijing time, and looks for it on bill D and on
bill D−1. The windows of consecutive days tile the time line, so each record is
expected by exactly one run and each line is checked by exactly one run (its own day's).

The buffer covers a record we stamped a little before midnight that the channel
completed just after it (it is on bill D+1, so run D+1 must expect it); bill D−1 covers
the opposite, a line the channel put on the day before the one we recorded.

A key that moves money more than once (twice on bill D, or on bill D−1 and again on D)
means the channel counts the money twice: every occurrence after the first is a line we
have no record for, reported as missing ours under the key and ``#<occurrence>``.
"""
from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable, Protocol, Sequence
from zoneinfo import ZoneInfo

# Both channels cut their bills by the calendar day in Beijing time.
BILL_ZONE = ZoneInfo("Asia/Shanghai")
PAYMENT = "payment"
REFUND = "refund"
# The longest reference a discrepancy keeps (its column's length).
REFERENCE_LENGTH = 64


class DiscrepancyKind(str, enum.Enum):
    MISSING_OURS = "missing_ours"  # the bill has a line we have no record of
    MISSING_THEIRS = "missing_theirs"  # we completed something the channel's bills lack
    AMOUNT_MISMATCH = "amount_mismatch"
    STATUS_MISMATCH = "status_mismatch"  # e.g. the bill says paid, our attempt is not
    FEE_MISMATCH = "fee_mismatch"


KIND_ORDER = {kind: position for position, kind in enumerate(DiscrepancyKind)}


class BillEntry(Protocol):
    """What matching reads of a bill line (`app.payments.channels.base.BillLine`)."""

    @property
    def kind(self) -> str: ...
    @property
    def out_trade_no(self) -> str: ...
    @property
    def channel_trade_no(self) -> str: ...
    @property
    def amount_fen(self) -> int: ...
    @property
    def fee_fen(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def out_refund_no(self) -> str | None: ...
    @property
    def channel_refund_no(self) -> str | None: ...


@dataclass(frozen=True)
class PaymentRecord:
    """Our side of a payment: one attempt. Times are naive UTC, as stored."""

    attempt_id: int
    out_trade_no: str
    amount_fen: int
    status: str  # created / succeeded / closed / failed
    fee_fen: int | None
    succeeded_at: datetime | None
    channel_trade_no: str | None = None  # the channel's number, once it told us


@dataclass(frozen=True)
class RefundRecord:
    refund_id: int
    attempt_id: int
    out_trade_no: str
    out_refund_no: str
    amount_fen: int
    status: str  # requested … processing / succeeded / failed
    fee_fen: int | None
    succeeded_at: datetime | None


@dataclass(frozen=True)
class Finding:
    """One discrepancy, with what we have and what the bill says side by side."""

    kind: DiscrepancyKind
    subject: str  # PAYMENT or REFUND
    out_trade_no: str
    out_refund_no: str | None = None
    attempt_id: int | None = None
    refund_id: int | None = None
    ours_amount_fen: int | None = None
    theirs_amount_fen: int | None = None
    ours_status: str | None = None
    theirs_state: str | None = None
    ours_fee_fen: int | None = None
    theirs_fee_fen: int | None = None
    channel_trade_no: str | None = None
    occurred_at: datetime | None = None  # naive UTC: the channel's time, or ours if it has none
    occurrence: int = 1  # above 1: a repeat of a line already counted (a duplicate)

    @property
    def reference(self) -> str:
        """The number a discrepancy is known by: our out_refund_no for a refund (the
        channel's refund number when the line carries none of ours), else out_trade_no;
        a duplicate line's adds ``#<occurrence>``, within `REFERENCE_LENGTH`."""
        number = self.out_refund_no or self.out_trade_no
        if self.occurrence == 1:
            return number
        suffix = f"#{self.occurrence}"
        return number[:REFERENCE_LENGTH - len(suffix)] + suffix

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind.value, self.subject, self.reference)


# Which of our statuses agree with a line's state. A refund still "processing" at the
# channel may be processing here too; anything else that differs is for staff.
AGREEING_STATUSES: dict[tuple[str, str], frozenset[str]] = {
    (PAYMENT, "succeeded"): frozenset({"succeeded"}),
    (PAYMENT, "processing"): frozenset({"created"}),
    (PAYMENT, "failed"): frozenset({"closed", "failed"}),
    (REFUND, "succeeded"): frozenset({"succeeded"}),
    (REFUND, "processing"): frozenset({"processing"}),
    (REFUND, "failed"): frozenset({"failed"}),
}


def expected_window(bill_date: date, buffer: timedelta) -> tuple[datetime, datetime]:
    """The naive-UTC interval [start, end) of completions run ``bill_date`` expects."""
    midnight = _naive_utc(datetime.combine(bill_date, time(), tzinfo=BILL_ZONE))
    return midnight - buffer, midnight + timedelta(days=1) - buffer


def bill_days_due(local_now: datetime, after_hour: int, lookback_days: int) -> list[date]:
    """The days, oldest first, whose bills a round at ``local_now`` (Beijing time)
    should have: the ``lookback_days`` days up to yesterday, but yesterday only from
    ``after_hour`` on, when the channels have published its bill."""
    yesterday = local_now.date() - timedelta(days=1)
    days = [yesterday - timedelta(days=back) for back in range(lookback_days - 1, -1, -1)]
    return days if local_now.hour >= after_hour else days[:-1]


def line_reference(line: BillEntry) -> str:
    if _kind(line) == REFUND:
        return line.out_refund_no or line.channel_refund_no or line.out_trade_no
    return line.out_trade_no


def match_bill(
    bill: Sequence[BillEntry],
    previous_bill: Sequence[BillEntry],
    payments: Iterable[PaymentRecord],
    refunds: Iterable[RefundRecord],
    window: tuple[datetime, datetime],
) -> list[Finding]:
    """Every discrepancy between ``bill`` (day D) and our records.

    ``payments`` and ``refunds`` must hold our record of every key on ``bill`` that we
    have, and every record completed inside ``window``; others are ignored. A line gives
    at most one finding, the first that applies of missing, amount, status and fee: a
    later kind is usually a consequence of an earlier one (a fee follows its amount, and
    is only final once both sides say succeeded).

    The keys are cross-checked: a refund line whose trade is not the one our refund of
    that number belongs to is missing ours (the bill refunds a trade we have no such
    refund for), and a payment line whose channel trade number is not the one the
    channel gave us is a status mismatch.
    """
    payments_by_no = {record.out_trade_no: record for record in payments}
    refunds_by_no = {record.out_refund_no: record for record in refunds}
    findings: dict[tuple[str, str, str], Finding] = {}

    def add(found: Finding | None) -> None:
        if found is not None:
            findings.setdefault(found.key, found)

    # Money-moving lines per key, counting the day before's first (its run checked them).
    occurrences: Counter[tuple[str, str]] = Counter(
        (_kind(line), line_reference(line)) for line in previous_bill if _moves_money(line))
    for line in bill:
        key = (_kind(line), line_reference(line))
        if _moves_money(line):
            occurrences[key] += 1
            if occurrences[key] > 1:
                add(_duplicate(line, occurrences[key]))
                continue
        add(_check_refund_line(line, refunds_by_no.get(key[1])) if key[0] == REFUND
            else _check_payment_line(line, payments_by_no.get(line.out_trade_no)))

    paid_on_bills = {line.out_trade_no for line in (*bill, *previous_bill) if _kind(line) == PAYMENT}
    refunded_on_bills = {(line_reference(line), line.out_trade_no)
                         for line in (*bill, *previous_bill) if _kind(line) == REFUND}
    start, end = window
    for payment in payments_by_no.values():
        if (payment.status == "succeeded" and _within(payment.succeeded_at, start, end)
                and payment.out_trade_no not in paid_on_bills):
            found = Finding(
                DiscrepancyKind.MISSING_THEIRS, PAYMENT, payment.out_trade_no,
                attempt_id=payment.attempt_id, ours_amount_fen=payment.amount_fen,
                ours_status=payment.status, ours_fee_fen=payment.fee_fen, occurred_at=payment.succeeded_at,
            )
            findings.setdefault(found.key, found)
    for refund in refunds_by_no.values():
        if (refund.status == "succeeded" and _within(refund.succeeded_at, start, end)
                and (refund.out_refund_no, refund.out_trade_no) not in refunded_on_bills):
            found = Finding(
                DiscrepancyKind.MISSING_THEIRS, REFUND, refund.out_trade_no, refund.out_refund_no,
                attempt_id=refund.attempt_id, refund_id=refund.refund_id, ours_amount_fen=refund.amount_fen,
                ours_status=refund.status, ours_fee_fen=refund.fee_fen, occurred_at=refund.succeeded_at,
            )
            findings.setdefault(found.key, found)
    return list(findings.values())


def _kind(line: BillEntry) -> str:
    # BillKind is a str enum: its value compares equal to the plain string.
    return REFUND if line.kind == REFUND else PAYMENT


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _within(moment: datetime | None, start: datetime, end: datetime) -> bool:
    return moment is not None and start <= moment < end


def _moves_money(line: BillEntry) -> bool:
    # A refund still processing or failed at the channel moves nothing (yet).
    return line.state == "succeeded"


def _theirs(line: BillEntry) -> dict[str, object]:
    return dict(theirs_amount_fen=line.amount_fen, theirs_state=line.state, theirs_fee_fen=line.fee_fen,
                channel_trade_no=line.channel_trade_no, occurred_at=_naive_utc(line.occurred_at))


def _duplicate(line: BillEntry, occurrence: int) -> Finding:
    """A repeat of a line already counted: no record of ours stands behind it."""
    refund_no = line_reference(line) if _kind(line) == REFUND else None
    return Finding(DiscrepancyKind.MISSING_OURS, _kind(line), line.out_trade_no, refund_no,
                   occurrence=occurrence, **_theirs(line))


def _check_payment_line(line: BillEntry, payment: PaymentRecord | None) -> Finding | None:
    theirs = _theirs(line)
    if payment is None:
        return Finding(DiscrepancyKind.MISSING_OURS, PAYMENT, line.out_trade_no, **theirs)
    ours = dict(attempt_id=payment.attempt_id, ours_amount_fen=payment.amount_fen,
                ours_status=payment.status, ours_fee_fen=payment.fee_fen)
    kind = _first_difference(PAYMENT, line, payment.amount_fen, payment.status, payment.fee_fen,
                             payment.channel_trade_no)
    return None if kind is None else Finding(kind, PAYMENT, line.out_trade_no, **ours, **theirs)


def _check_refund_line(line: BillEntry, refund: RefundRecord | None) -> Finding | None:
    theirs = _theirs(line)
    reference = line_reference(line)
    if refund is None or refund.out_trade_no != line.out_trade_no:
        return Finding(DiscrepancyKind.MISSING_OURS, REFUND, line.out_trade_no, reference, **theirs)
    ours = dict(attempt_id=refund.attempt_id, refund_id=refund.refund_id, ours_amount_fen=refund.amount_fen,
                ours_status=refund.status, ours_fee_fen=refund.fee_fen)
    kind = _first_difference(REFUND, line, refund.amount_fen, refund.status, refund.fee_fen)
    return None if kind is None else Finding(kind, REFUND, refund.out_trade_no, reference, **ours, **theirs)


def _first_difference(subject: str, line: BillEntry, amount_fen: int, status: str, fee_fen: int | None,
                      channel_trade_no: str | None = None) -> DiscrepancyKind | None:
    if line.amount_fen != amount_fen:
        return DiscrepancyKind.AMOUNT_MISMATCH
    if channel_trade_no and line.channel_trade_no and line.channel_trade_no != channel_trade_no:
        return DiscrepancyKind.STATUS_MISMATCH  # the channel's number is not the one it gave us
    if status not in AGREEING_STATUSES.get((subject, line.state), frozenset()):
        return DiscrepancyKind.STATUS_MISMATCH
    if line.state == "succeeded" and line.fee_fen != (fee_fen or 0):
        return DiscrepancyKind.FEE_MISMATCH
    return None
