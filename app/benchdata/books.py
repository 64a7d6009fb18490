"""The rows one planned order leaves behind, as the real code paths write them: placing
it (`app.checkout.services`), paying or expiring it (`app.payments.settlement`), the
release of its shares (`app.earnings.maturity`) and a customer refund
(`app.payments.refund_workflow`).

Amounts come from the domain's own functions: `quote` prices the order, `split_share`
each line's shares, `payment_fee` / `refund_fee` the channel fees, `line_legs` each
line's ledger legs. What is reproduced here instead is marked where it is done: merging
legs into postings (`post_entry`), the money a channel received (`_received`), the rate
in force (`rate_for`, see catalog.py) and the audit rows (`record`).
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Callable, Iterable, Mapping

from app.audit.services import SYSTEM
from app.benchdata.bulk import BatchRows
from app.benchdata.channel_texts import notification_body, qr_code, refund_no_of, trade_no_of
from app.benchdata.catalog import FINANCE_EMAIL, SUPPORT_EMAIL, BenchCatalog, BenchCourse
from app.benchdata.history import BIG_COURSE, OrderPlan, Timeline, order_no
from app.cart.pricing import Discount, PriceLine, Quote, quote
from app.earnings.rules import ShareSplit, split_share
from app.ledger import accounts
from app.ledger.fees import payment_fee, refund_fee
from app.ledger.services import UnbalancedEntry, line_legs, release_key
from app.payments.settlement import FIRST_QUERY_AFTER, next_query_delay

TakeId = Callable[[str], int]
DECISION_REASON = "七天无理由退款 Within the refund window"


@dataclass(frozen=True, slots=True)
class SoldLine:
    """What `line_legs` reads of an order line, without an ORM object."""

    id: int
    amount_fen: int
    tax_fen: int
    shares: tuple[ShareSplit, ...]


@dataclass(frozen=True)
class Rules:
    """The configuration the real code reads at each step, read once per run."""

    tax_rate: Decimal
    order_ttl: timedelta
    refund_window: timedelta
    large_refund_fen: int


def balanced_postings(entry_id: int, source_key: str, legs: Iterable[tuple[str, int]]) -> list[tuple]:
    """As `app.ledger.services.post_entry`: legs on one account merged, zero legs
    dropped, and an entry that does not sum to zero refused."""
    merged: dict[str, int] = {}
    for account, amount_fen in legs:
        merged[account] = merged.get(account, 0) + amount_fen
    if sum(merged.values()) != 0:
        raise UnbalancedEntry(f"{source_key}: postings do not sum to zero")
    return [(entry_id, account, amount) for account, amount in merged.items() if amount]


def received(channel: str, amount_fen: int, fee_fen: int) -> list[tuple[str, int]]:
    """As `app.ledger.services._received`: the channel owes us the amount less its fee."""
    return [(accounts.channel(channel), amount_fen - fee_fen), (accounts.CHANNEL_FEES, fee_fen)]


def queries_before(elapsed: timedelta) -> int:
    """How many active queries an attempt had by ``elapsed`` after its QR was issued, on
    the schedule `app.payments.settlement` keeps."""
    due, made = FIRST_QUERY_AFTER, 0
    while due < elapsed:
        due += next_query_delay(made)
        made += 1
    return made


def _audit_json(values: Mapping[str, object] | None) -> str | None:
    """As `app.audit.services._json`."""
    return None if values is None else json.dumps(dict(values), ensure_ascii=False, sort_keys=True, default=str)


class Books:
    def __init__(self, catalog: BenchCatalog, line: Timeline, rules: Rules, discounts: Mapping[str, Discount]) -> None:
        self.catalog = catalog
        self.line = line
        self.rules = rules
        self.discounts = discounts
        self._quotes: dict[tuple, Quote] = {}
        self._splits: dict[tuple, tuple[ShareSplit, ...]] = {}
        self._fees: dict[tuple[str, int], int] = {}

    def _quote(self, courses: list[BenchCourse], coupon: str | None) -> Quote:
        # Bench coupons apply to the whole cart, so prices alone fix the quote.
        key = (tuple(course.price_fen for course in courses), coupon)
        found = self._quotes.get(key)
        if found is None:
            lines = [PriceLine(course.id, course.price_fen) for course in courses]
            found = self._quotes[key] = quote(lines, self.rules.tax_rate, self.discounts.get(coupon or ""))
        return found

    def _split(self, net_fen: int, rate_bps: int, authors: tuple[tuple[int, int], ...]) -> tuple[ShareSplit, ...]:
        key = (net_fen, rate_bps, authors)
        found = self._splits.get(key)
        if found is None:
            found = self._splits[key] = tuple(split_share(net_fen, rate_bps, authors))
        return found

    def _fee(self, channel: str, amount_fen: int) -> int:
        key = (channel, amount_fen)
        found = self._fees.get(key)
        if found is None:
            found = self._fees[key] = payment_fee(channel, amount_fen)
        return found

    def add_order(self, rows: BatchRows, take: TakeId, plan: OrderPlan, learner_id: int) -> None:
        tables = rows.tables
        placed = plan.placed_at
        order_id = take("orders")
        number = order_no(plan)
        catalog = self.catalog
        courses = [catalog.big_course if index == BIG_COURSE else catalog.courses[index]
                   for index in plan.course_indexes]
        priced = self._quote(courses, plan.coupon)
        sold = []
        for course, line in zip(courses, priced.lines):
            line_id = take("order_lines")
            rate_bps = course.rate_at(placed)
            shares = self._split(line.amount_fen - line.tax_fen, rate_bps, course.authors)
            tables["order_lines"].append((line_id, order_id, course.id, course.title_zh, course.instructor_id,
                                          rate_bps, line.list_price_fen, line.discount_fen, line.tax_fen,
                                          line.amount_fen))
            for share in shares:
                tables["order_line_shares"].append(
                    (line_id, share.instructor_id, share.weight, share.weight_total, share.share_fen))
            sold.append((course, SoldLine(line_id, line.amount_fen, line.tax_fen, shares)))

        expires_at = placed + self.rules.order_ttl
        paid_at = None if plan.paid_after is None else (placed + plan.paid_after).replace(microsecond=0)
        attempt_id, channel, fee_fen, out_trade_no, closed_at = 0, "", 0, "", None
        for sequence, attempt in enumerate(plan.attempts, start=1):
            attempt_id, channel = take("payment_attempts"), attempt.channel
            out_trade_no = f"{number}P{sequence:02d}"
            opened = placed + attempt.opened_after
            issued = opened + timedelta(milliseconds=300)
            qr_text = qr_code(channel, plan.notify_id >> (8 * sequence))
            if attempt.closed_after is None:
                assert paid_at is not None
                fee_fen = self._fee(channel, priced.total_fen)
                # The timeline of issue 11's fund-flow time: Alipay reports the scan (here
                # halfway between the QR and the payment), WeChat Pay none; the booking is
                # when `_settle` books it.
                scanned = (issued + (paid_at - issued) / 2).replace(microsecond=0) if channel == "alipay" else None
                booked_at = paid_at + timedelta(seconds=plan.delays[0]) + timedelta(seconds=plan.delays[1])
                tables["payment_attempts"].append((
                    attempt_id, order_id, channel, out_trade_no, priced.total_fen, "succeeded", qr_text,
                    trade_no_of(channel, plan, sequence), expires_at, opened, paid_at, None, fee_fen,
                    issued, queries_before(paid_at - issued), scanned, booked_at))
            else:
                closed_at = placed + attempt.closed_after
                tables["payment_attempts"].append((
                    attempt_id, order_id, channel, out_trade_no, priced.total_fen, "closed", qr_text, None,
                    expires_at, opened, None, closed_at, None, issued, queries_before(closed_at - issued),
                    None, None))

        status = "closed"
        if paid_at is not None:
            status = self._settle(rows, take, plan, learner_id, order_id, number, sold, priced.total_fen,
                                  channel, attempt_id, out_trade_no, fee_fen, paid_at)
            closed_at = None
        coupon_id = self.catalog.coupon_ids[plan.coupon] if plan.coupon else None
        if coupon_id is not None:
            # An unpaid order gives its use back when it closes (`coupons.release`).
            tables["coupon_redemptions"].append((coupon_id, learner_id, order_id, placed, closed_at))
            if closed_at is None:
                rows.coupon_uses[coupon_id] = rows.coupon_uses.get(coupon_id, 0) + 1
        tables["orders"].append((order_id, number, learner_id, status, "CNY", priced.subtotal_fen,
                                 priced.discount_fen, priced.tax_fen, priced.total_fen, coupon_id, plan.coupon,
                                 expires_at, placed, paid_at, closed_at))

    def _settle(self, rows: BatchRows, take: TakeId, plan: OrderPlan, learner_id: int, order_id: int, number: str,
                sold: list[tuple[BenchCourse, SoldLine]], total_fen: int, channel: str, attempt_id: int,
                out_trade_no: str, fee_fen: int, paid_at: datetime) -> str:
        """The callback stored and processed: inbox row, sale entry, enrolments; then the
        refund, if any, and the release of every line no refund holds. Returns the
        order's final status."""
        tables = rows.tables
        received_at = paid_at + timedelta(seconds=plan.delays[0])
        booked_at = received_at + timedelta(seconds=plan.delays[1])
        trade_no = trade_no_of(channel, plan, len(plan.attempts))
        notify_id = f"{plan.notify_id:032x}" if channel == "alipay" else str(uuid.UUID(int=plan.notify_id))
        tables["notification_inbox"].append((
            channel, f"{channel}:{notify_id}", out_trade_no, attempt_id, "paid", total_fen, trade_no, paid_at,
            notification_body(channel, notify_id, out_trade_no, trade_no, total_fen, paid_at, received_at),
            "processed", "paid", 2 if plan.redelivered else 1, received_at, booked_at))
        legs = received(channel, total_fen, fee_fen)
        for _, line in sold:
            legs.extend(line_legs(line))  # type: ignore[arg-type]  (reads amount, tax, shares)
        self._entry(rows, take, "payment", f"payment:{attempt_id}", order_id,
                    f"order {number} paid by {channel}", booked_at, legs)

        refunded_at, refunded_ids, status = self._refund(
            rows, take, plan, learner_id, order_id, number, sold, total_fen, channel, attempt_id, out_trade_no,
            fee_fen, trade_no, paid_at)
        released_at = paid_at + self.rules.refund_window + timedelta(seconds=plan.delays[2])
        for course, line in sold:
            revoked_at = refunded_at if line.id in refunded_ids else None
            tables["enrollments"].append((learner_id, course.id, order_id, booked_at, revoked_at))
            if revoked_at is None and released_at < self.line.end:
                # As `post_release`: the shares move from pending to available.
                release_legs = []
                for share in line.shares:
                    release_legs.append((accounts.instructor_pending(share.instructor_id), share.share_fen))
                    release_legs.append((accounts.instructor_available(share.instructor_id), -share.share_fen))
                self._entry(rows, take, "release", release_key(line.id), order_id,
                            f"refund window of order line {line.id} closed", released_at, release_legs)
        return status

    def _refund(self, rows: BatchRows, take: TakeId, plan: OrderPlan, learner_id: int, order_id: int, number: str,
                sold: list[tuple[BenchCourse, SoldLine]], total_fen: int, channel: str, attempt_id: int,
                out_trade_no: str, fee_fen: int, trade_no: str,
                paid_at: datetime) -> tuple[datetime | None, set[int], str]:
        """A learner's refund, approved (twice when large), sent and returned: its rows,
        entry and audit. Only one that finishes inside the refund window and the history
        happens; it then holds its lines, which are never released."""
        plan_refund = plan.refund
        if plan_refund is None:
            return None, set(), "paid"
        lines = [line for position, (_, line) in enumerate(sold) if position in plan_refund.line_positions]
        amount_fen = sum(line.amount_fen for line in lines)
        large = amount_fen > self.rules.large_refund_fen
        requested_at = paid_at + plan_refund.requested_after
        first_at = requested_at + plan_refund.approved_after
        decided_at = first_at + plan_refund.second_approval_after if large else first_at
        succeeded_at = decided_at + plan_refund.succeeded_after
        booked_at = succeeded_at + timedelta(milliseconds=400)
        if booked_at >= min(paid_at + self.rules.refund_window, self.line.end):
            return None, set(), "paid"
        tables = rows.tables
        refund_id = take("refunds")
        refund_no = f"{out_trade_no}R01"
        returned_fee = refund_fee(fee_fen, total_fen, 0, amount_fen)
        channel_refund_no = refund_no_of(channel, plan, trade_no, succeeded_at)
        support, finance = self.catalog.support_id, self.catalog.finance_id
        tables["refunds"].append((
            refund_id, refund_no, order_id, attempt_id, "customer", amount_fen, plan_refund.reason, "succeeded",
            channel_refund_no, returned_fee, 1, requested_at, succeeded_at, learner_id,
            support if large else None, finance if large else support, decided_at, DECISION_REASON))
        for line in lines:
            tables["refund_lines"].append((refund_id, line.id, line.amount_fen))
        # As `post_refund`, shares still pending: every leg of the refunded lines reversed.
        legs = [(account, -amount) for account, amount in received(channel, amount_fen, returned_fee)]
        for line in lines:
            legs.extend((account, -amount) for account, amount in line_legs(line))  # type: ignore[arg-type]
        self._entry(rows, take, "refund", f"refund:{refund_id}", order_id,
                    f"refund of {len(lines)} line(s) of order {number}", booked_at, legs)
        status = "refunded" if amount_fen >= total_fen else "partially_refunded"

        def snapshot(state: str) -> dict[str, object]:
            return {"status": state, "amount_fen": amount_fen, "refund_no": refund_no}

        approvals = [(support, SUPPORT_EMAIL, "refund.approve", "requested", "approved", first_at)]
        if large:
            approvals = [(support, SUPPORT_EMAIL, "refund.approve_first", "requested", "awaiting_finance", first_at),
                         (finance, FINANCE_EMAIL, "refund.approve", "awaiting_finance", "approved", decided_at)]
        for actor_id, email, action, before, after, moment in approvals:
            tables["audit_log"].append((actor_id, email, action, "refund", str(refund_id),
                                        _audit_json(snapshot(before)), _audit_json(snapshot(after)),
                                        DECISION_REASON, moment))
        tables["audit_log"].append((None, SYSTEM, "refund.succeeded", "refund", str(refund_id), None,
                                    _audit_json({"amount_fen": amount_fen, "order_status": status}),
                                    "the channel returned the money", booked_at))
        return booked_at, {line.id for line in lines}, status

    @staticmethod
    def _entry(rows: BatchRows, take: TakeId, kind: str, source_key: str, order_id: int, memo: str,
               created_at: datetime, legs: Iterable[tuple[str, int]]) -> None:
        entry_id = take("journal_entries")
        rows.tables["journal_entries"].append((entry_id, kind, source_key, order_id, memo, created_at))
        rows.tables["postings"].extend(balanced_postings(entry_id, source_key, legs))
