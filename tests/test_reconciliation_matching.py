"""Matching a day's bill against our records (app/reconciliation/matching.py): each
kind of discrepancy, one finding per line, duplicates and keys that disagree, and the
midnight buffer on both sides."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from app.payments.channels.base import BillKind, BillLine
from app.reconciliation.matching import (BILL_ZONE, DiscrepancyKind, PaymentRecord, RefundRecord, bill_days_due,
                                         expected_window, match_bill)

D = date(2026, 11, 20)
BUFFER = timedelta(seconds=900)
WINDOW = expected_window(D, BUFFER)
NOON = datetime(2026, 11, 20, 12, 0, tzinfo=BILL_ZONE)


def utc(moment: datetime) -> datetime:
    """An aware time as we store it: naive UTC."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def beijing(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=BILL_ZONE)


def paid_line(out_trade_no: str = "T1", amount_fen: int = 10000, fee_fen: int = 60,
              at: datetime = NOON) -> BillLine:
    return BillLine(BillKind.PAYMENT, out_trade_no, f"CH{out_trade_no}", amount_fen, fee_fen, "succeeded", at)


def refund_line(out_refund_no: str = "T1R01", amount_fen: int = 10000, fee_fen: int = 60,
                state: str = "succeeded", at: datetime = NOON) -> BillLine:
    return BillLine(BillKind.REFUND, out_refund_no[:-3], f"CH{out_refund_no[:-3]}", amount_fen, fee_fen, state, at,
                    out_refund_no=out_refund_no, channel_refund_no=f"CHR{out_refund_no}")


def payment(out_trade_no: str = "T1", amount_fen: int = 10000, fee_fen: int | None = 60,
            status: str = "succeeded", at: datetime | None = NOON, attempt_id: int = 1,
            channel_trade_no: str | None = None) -> PaymentRecord:
    return PaymentRecord(attempt_id, out_trade_no, amount_fen, status, fee_fen, utc(at) if at else None,
                         channel_trade_no)


def refund(out_refund_no: str = "T1R01", amount_fen: int = 10000, fee_fen: int | None = 60,
           status: str = "succeeded", at: datetime | None = NOON) -> RefundRecord:
    return RefundRecord(7, 1, out_refund_no[:-3], out_refund_no, amount_fen, status, fee_fen,
                        utc(at) if at else None)


def kinds(findings) -> list[tuple[str, str, str]]:
    return sorted((finding.kind.value, finding.subject, finding.reference) for finding in findings)


def test_a_bill_that_agrees_with_our_records_gives_nothing() -> None:
    bill = [paid_line(), refund_line(), paid_line("T2", 500, 3)]
    ours = [payment(), payment("T2", 500, 3, attempt_id=2)]
    assert match_bill(bill, [], ours, [refund()], WINDOW) == []


def test_a_line_we_have_no_record_of_is_missing_ours() -> None:
    findings = match_bill([paid_line("GHOST"), refund_line("T9R01")], [], [], [], WINDOW)
    assert kinds(findings) == [("missing_ours", "payment", "GHOST"), ("missing_ours", "refund", "T9R01")]
    ghost = next(finding for finding in findings if finding.subject == "payment")
    assert (ghost.theirs_amount_fen, ghost.theirs_state, ghost.theirs_fee_fen) == (10000, "succeeded", 60)
    assert (ghost.ours_amount_fen, ghost.attempt_id, ghost.channel_trade_no) == (None, None, "CHGHOST")
    assert ghost.occurred_at == utc(NOON)


def test_a_payment_we_completed_that_neither_bill_has_is_missing_theirs() -> None:
    findings = match_bill([], [], [payment()], [refund()], WINDOW)
    assert kinds(findings) == [("missing_theirs", "payment", "T1"), ("missing_theirs", "refund", "T1R01")]
    assert findings[0].ours_amount_fen == 10000 and findings[0].theirs_amount_fen is None


def test_a_payment_on_the_previous_days_bill_is_not_missing() -> None:
    assert match_bill([], [paid_line(), refund_line()], [payment()], [refund()], WINDOW) == []


def test_records_that_did_not_complete_are_not_expected_on_the_bill() -> None:
    ours = [payment("T1", status="created", at=None), payment("T2", status="closed", at=None, attempt_id=2)]
    assert match_bill([], [], ours, [refund(status="processing", at=None)], WINDOW) == []


def test_records_completed_outside_the_window_are_not_expected_by_this_run() -> None:
    ours = [payment("T1", at=NOON - timedelta(days=1)), payment("T2", at=NOON + timedelta(days=1), attempt_id=2)]
    assert match_bill([], [], ours, [], WINDOW) == []


@pytest.mark.parametrize(("line", "record", "expected"), [
    (paid_line(amount_fen=9999), payment(), "amount_mismatch"),
    (paid_line(), payment(status="created", fee_fen=None, at=None), "status_mismatch"),
    (paid_line(), payment(status="closed", fee_fen=None, at=None), "status_mismatch"),
    (paid_line(fee_fen=61), payment(), "fee_mismatch"),
    (paid_line(fee_fen=60), payment(fee_fen=None), "fee_mismatch"),
], ids=["amount", "paid-but-created", "paid-but-closed", "fee", "fee-unknown-here"])
def test_a_payment_line_that_differs_gives_its_kind(line: BillLine, record: PaymentRecord, expected: str) -> None:
    findings = match_bill([line], [], [record], [], WINDOW)
    assert kinds(findings) == [(expected, "payment", "T1")]
    assert findings[0].attempt_id == 1


@pytest.mark.parametrize(("line", "record", "expected"), [
    (refund_line(amount_fen=5000), refund(), "amount_mismatch"),
    (refund_line(), refund(status="processing", fee_fen=None, at=None), "status_mismatch"),
    (refund_line(), refund(status="failed", fee_fen=None, at=None), "status_mismatch"),
    (refund_line(state="failed", fee_fen=0), refund(), "status_mismatch"),
    (refund_line(fee_fen=59), refund(), "fee_mismatch"),
], ids=["amount", "succeeded-but-processing", "succeeded-but-failed", "failed-but-succeeded", "fee"])
def test_a_refund_line_that_differs_gives_its_kind(line: BillLine, record: RefundRecord, expected: str) -> None:
    findings = match_bill([line], [], [], [record], WINDOW)
    assert kinds(findings) == [(expected, "refund", "T1R01")]
    assert (findings[0].refund_id, findings[0].out_trade_no) == (7, "T1")


def test_a_refund_still_processing_on_both_sides_agrees_and_its_fee_is_not_final() -> None:
    line = refund_line(state="processing", fee_fen=0)
    assert match_bill([line], [], [], [refund(status="processing", fee_fen=None, at=None)], WINDOW) == []


def test_one_finding_per_line_the_first_that_applies() -> None:
    """A different amount usually brings a different fee and a held (failed) attempt:
    the amount is what staff must look at."""
    line = paid_line(amount_fen=12000, fee_fen=72)
    findings = match_bill([line], [], [payment(status="failed", fee_fen=None, at=None)], [], WINDOW)
    assert kinds(findings) == [("amount_mismatch", "payment", "T1")]
    assert (findings[0].ours_status, findings[0].theirs_state) == ("failed", "succeeded")


def test_a_line_we_lack_repeated_on_the_bill_is_missing_ours_for_each_occurrence() -> None:
    findings = match_bill([paid_line("GHOST"), paid_line("GHOST")], [], [], [], WINDOW)
    assert kinds(findings) == [("missing_ours", "payment", "GHOST"), ("missing_ours", "payment", "GHOST#2")]
    assert {(finding.out_trade_no, finding.occurrence) for finding in findings} == {("GHOST", 1), ("GHOST", 2)}


def test_a_payment_counted_twice_on_the_bill_reports_the_extra_line_as_missing_ours() -> None:
    """The channel counts the money twice: the first line matches our attempt, the
    second has no record of ours behind it."""
    findings = match_bill([paid_line(), paid_line(), paid_line()], [], [payment()], [], WINDOW)
    assert kinds(findings) == [("missing_ours", "payment", "T1#2"), ("missing_ours", "payment", "T1#3")]
    assert all(finding.attempt_id is None and finding.theirs_amount_fen == 10000 for finding in findings)


def test_a_refund_counted_twice_on_the_bill_reports_the_extra_line_as_missing_ours() -> None:
    findings = match_bill([refund_line(), refund_line()], [], [], [refund()], WINDOW)
    assert kinds(findings) == [("missing_ours", "refund", "T1R01#2")]
    assert (findings[0].out_refund_no, findings[0].refund_id) == ("T1R01", None)


def test_a_line_on_the_previous_days_bill_and_again_on_this_one_is_missing_ours() -> None:
    previous = [paid_line(at=beijing(D - timedelta(days=1), 23)), refund_line(at=beijing(D - timedelta(days=1), 23))]
    findings = match_bill([paid_line(), refund_line()], previous, [payment()], [refund()], WINDOW)
    assert kinds(findings) == [("missing_ours", "payment", "T1#2"), ("missing_ours", "refund", "T1R01#2")]


def test_a_refund_processing_on_one_bill_and_succeeded_on_the_next_is_not_a_duplicate() -> None:
    """Only lines that move money count: a refund the channel listed as processing the
    day before moved nothing then."""
    previous = [refund_line(state="processing", fee_fen=0, at=beijing(D - timedelta(days=1), 23))]
    assert match_bill([refund_line()], previous, [], [refund()], WINDOW) == []


def test_a_duplicates_reference_keeps_within_the_column() -> None:
    long_no = "L" * 64
    findings = match_bill([paid_line(long_no), paid_line(long_no)], [], [payment(long_no)], [], WINDOW)
    assert [finding.reference for finding in findings] == ["L" * 62 + "#2"]


# --- keys that disagree ------------------------------------------------------------------


def test_a_refund_line_naming_another_trade_than_our_refund_is_missing_ours() -> None:
    """Our T1R01 refunds T1; the bill has T1R01 refunding T2: it refunds a trade we
    have no such refund for, and our refund of T1 is not on the bill."""
    line = BillLine(BillKind.REFUND, "T2", "CHT2", 10000, 60, "succeeded", NOON,
                    out_refund_no="T1R01", channel_refund_no="CHRT1R01")
    findings = match_bill([line], [], [], [refund()], WINDOW)
    assert kinds(findings) == [("missing_ours", "refund", "T1R01"), ("missing_theirs", "refund", "T1R01")]
    missing_ours = findings[0]
    assert (missing_ours.out_trade_no, missing_ours.refund_id, missing_ours.ours_amount_fen) == ("T2", None, None)
    assert (findings[1].out_trade_no, findings[1].refund_id) == ("T1", 7)


def test_a_refund_line_naming_another_trade_of_a_refund_outside_the_window_is_missing_ours_only() -> None:
    line = BillLine(BillKind.REFUND, "T2", "CHT2", 10000, 60, "succeeded", NOON,
                    out_refund_no="T1R01", channel_refund_no="CHRT1R01")
    findings = match_bill([line], [], [], [refund(at=NOON - timedelta(days=3))], WINDOW)
    assert kinds(findings) == [("missing_ours", "refund", "T1R01")]


@pytest.mark.parametrize(("ours", "expected"), [
    ("CHT1", []),
    (None, []),
    ("CH-SOMETHING-ELSE", [("status_mismatch", "payment", "T1")]),
], ids=["same", "unknown-here", "different"])
def test_a_payment_line_whose_channel_trade_number_is_not_ours_is_a_status_mismatch(
    ours: str | None, expected: list
) -> None:
    findings = match_bill([paid_line()], [], [payment(channel_trade_no=ours)], [], WINDOW)
    assert kinds(findings) == expected
    if findings:
        assert (findings[0].attempt_id, findings[0].channel_trade_no) == (1, "CHT1")


def test_an_amount_that_differs_comes_before_a_channel_trade_number_that_differs() -> None:
    findings = match_bill([paid_line(amount_fen=1)], [], [payment(channel_trade_no="OTHER")], [], WINDOW)
    assert kinds(findings) == [("amount_mismatch", "payment", "T1")]


def test_a_record_found_on_its_line_is_not_also_missing_theirs() -> None:
    findings = match_bill([paid_line(fee_fen=1)], [], [payment()], [], WINDOW)
    assert kinds(findings) == [("fee_mismatch", "payment", "T1")]


# --- the midnight buffer ---------------------------------------------------------------


def test_the_window_of_a_day_starts_the_buffer_before_beijing_midnight() -> None:
    start, end = expected_window(D, BUFFER)
    assert start == datetime(2026, 11, 19, 15, 45)  # 23:45 Beijing on the 19th, in UTC
    assert end == datetime(2026, 11, 20, 15, 45)


def test_consecutive_windows_tile_time_so_each_record_is_expected_by_one_run() -> None:
    midnight = utc(beijing(D, 0))
    for offset in (-901, -900, -899, -1, 0, 1, 899, 900, 86399, 86400):
        moment = midnight + timedelta(seconds=offset)
        owners = [day for day in (D - timedelta(days=1), D, D + timedelta(days=1))
                  if expected_window(day, BUFFER)[0] <= moment < expected_window(day, BUFFER)[1]]
        assert len(owners) == 1, offset


def run(day: date, bills: dict[date, list[BillLine]], payments: list[PaymentRecord]) -> list:
    """The run of ``day`` as the service does it: both bills, records by key or window."""
    return match_bill(bills.get(day, []), bills.get(day - timedelta(days=1), []), payments, [],
                      expected_window(day, BUFFER))


def test_recorded_just_before_midnight_but_on_the_next_days_bill_is_not_reported() -> None:
    """We stamped 23:59:59 on the 19th; the channel completed it at 00:00:01 on the 20th."""
    bills = {D: [paid_line(at=beijing(D, 0, 0, 1))]}
    ours = [payment(at=beijing(D - timedelta(days=1), 23, 59, 59))]
    for day in (D - timedelta(days=1), D, D + timedelta(days=1)):
        assert run(day, bills, ours) == [], day


def test_recorded_just_after_midnight_but_on_the_previous_days_bill_is_not_reported() -> None:
    """The channel completed it at 23:59:59 on the 20th; we stamped 00:00:01 on the 21st."""
    bills = {D: [paid_line(at=beijing(D, 23, 59, 59))]}
    ours = [payment(at=beijing(D + timedelta(days=1), 0, 0, 1))]
    for day in (D - timedelta(days=1), D, D + timedelta(days=1), D + timedelta(days=2)):
        assert run(day, bills, ours) == [], day


def test_without_the_buffer_a_record_stamped_before_midnight_would_be_missing_theirs() -> None:
    bills = {D: [paid_line(at=beijing(D, 0, 0, 1))]}
    ours = [payment(at=beijing(D - timedelta(days=1), 23, 59, 59))]
    previous_day = D - timedelta(days=1)
    findings = match_bill([], bills.get(previous_day - timedelta(days=1), []), ours, [],
                          expected_window(previous_day, timedelta(0)))
    assert kinds(findings) == [("missing_theirs", "payment", "T1")]


def test_a_record_stamped_before_the_buffer_is_expected_on_its_own_days_bill() -> None:
    """20 minutes before midnight is beyond a 15-minute buffer: the 19th's run expects
    it, and a channel that put it on the 20th makes it missing there."""
    bills = {D: [paid_line(at=beijing(D, 0, 5))]}
    ours = [payment(at=beijing(D - timedelta(days=1), 23, 40))]
    assert kinds(run(D - timedelta(days=1), bills, ours)) == [("missing_theirs", "payment", "T1")]
    assert run(D, bills, ours) == []


# --- which days the periodic round reconciles -----------------------------------------


@pytest.mark.parametrize(("hour", "expected"), [
    (9, [date(2026, 11, 17), date(2026, 11, 18)]),
    (10, [date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19)]),
    (23, [date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19)]),
])
def test_yesterday_is_due_only_from_the_configured_hour(hour: int, expected: list[date]) -> None:
    assert bill_days_due(beijing(D, hour, 59), 10, 3) == expected


def test_the_lookback_counts_back_from_yesterday() -> None:
    assert bill_days_due(beijing(D, 11), 10, 1) == [date(2026, 11, 19)]


def test_the_kinds_are_the_five_of_the_issue() -> None:
    assert [kind.value for kind in DiscrepancyKind] == [
        "missing_ours", "missing_theirs", "amount_mismatch", "status_mismatch", "fee_mismatch"]
