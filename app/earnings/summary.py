"""The figures on an instructor's earnings page."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import func, select

from app.catalog.models import Course
from app.checkout.models import Order, OrderLine
from app.earnings.activity import recent_entries, rows_for
from app.earnings.documents import StatementRow
from app.earnings.models import Payout, Statement
from app.earnings.periods import period_of, previous_period
from app.earnings.statements import open_document
from app.extensions import db
from app.ledger import accounts
from app.ledger.services import balance
from app.timeutil import now

CHART_MONTHS = 12


@dataclass(frozen=True)
class EarningsSummary:
    pending_fen: int  # inside refund windows
    available_fen: int  # payable; negative when refunds clawed back more than was left
    in_transit_fen: int  # in a payout the bank has not confirmed
    paid_out_fen: int  # payouts the bank confirmed


def summary_of(instructor_id: int) -> EarningsSummary:
    def payouts(status: str) -> int:
        return db.session.scalar(
            select(func.coalesce(func.sum(Payout.amount_fen), 0)).where(
                Payout.instructor_id == instructor_id, Payout.status == status
            )
        )

    return EarningsSummary(
        pending_fen=-balance(accounts.instructor_pending(instructor_id)),
        available_fen=-balance(accounts.instructor_available(instructor_id)),
        in_transit_fen=payouts("pending"),
        paid_out_fen=payouts("paid"),
    )


def monthly_earnings(instructor_id: int) -> list[tuple[str, int]]:
    """Sales less refunds per month for the last months, from closed statements and the
    month still open, so the chart agrees with the statements."""
    current = period_of(now())
    periods = [current]
    for _ in range(CHART_MONTHS - 1):
        periods.insert(0, previous_period(periods[0]))
    earned = {period: 0 for period in periods}
    for statement in db.session.scalars(
        select(Statement).where(Statement.instructor_id == instructor_id, Statement.period >= periods[0])
    ):
        earned[statement.period] = statement.sales_fen + statement.refunds_fen
    for row in open_document(instructor_id).rows:
        month = f"{row.occurred_at.year:04d}-{row.occurred_at.month:02d}"
        if row.kind in ("sale", "refund") and month in earned:
            earned[month] += row.share_fen
    return [(period, earned[period]) for period in periods]


def recent_activity(instructor_id: int, limit: int = 50) -> list[StatementRow]:
    """The latest sales, refunds, payouts and adjustments, newest first."""
    return rows_for(recent_entries(instructor_id, limit), instructor_id)


def english_titles(rows: Iterable[StatementRow]) -> dict[tuple[str, str], str]:
    """The English title of each row's course, by (order number, title as sold).

    A row keeps the Chinese title its order line was sold under, as the statement files
    print it; a page read in English names the course by its English title instead.
    """
    order_nos = {row.order_no for row in rows if row.order_no}
    if not order_nos:
        return {}
    sold = db.session.execute(
        select(Order.order_no, OrderLine.title, Course.title_en)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .join(Course, Course.id == OrderLine.course_id)
        .where(Order.order_no.in_(order_nos))
    )
    return {(order_no, title): title_en for order_no, title, title_en in sold}
