"""What a seeded database offers a benchmark, read back from the database itself, so a
benchmark imports this instead of parsing what `flask bench seed` printed."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, cast, func, literal, select

from app.accounts.models import User
from app.benchdata.catalog import (
    BENCH_PASSWORD, BIG_INSTRUCTOR_EMAIL, HISTORY, LEARNER_EMAIL, load_catalog,
)
from app.benchdata.history import timeline
from app.benchdata.seeding import seeded_order_count
from app.checkout.models import Order, OrderLine
from app.extensions import db
from app.ledger.models import JournalEntry
from app.payments.models import Refund, RefundLine


@dataclass(frozen=True)
class BenchDataset:
    orders: int  # seeded orders present
    learner_email: str  # a learner with orders, to search by e-mail
    learner_id: int
    example_order_no: str  # a paid order of that learner
    big_instructor_email: str
    big_instructor_id: int
    big_course_id: int
    big_period: str  # "YYYY-MM": the month of the big instructor's busy statement
    big_sale_lines: int  # sale rows that statement prints
    big_refund_lines: int  # refund rows it prints
    history_end: datetime  # naive UTC: every seeded row lies before it
    password: str  # of every seeded account (bench databases only)


def bench_dataset() -> BenchDataset | None:
    """The seeded data's landmarks, or None when the database holds no seeded history."""
    learner_id = db.session.scalar(select(User.id).where(User.email == LEARNER_EMAIL))
    if learner_id is None:
        return None
    catalog = load_catalog()
    line = timeline(catalog.history_end, HISTORY)
    big_lines = select(OrderLine.id, OrderLine.order_id).where(
        OrderLine.course_id == catalog.big_course.id).subquery()
    in_month = (JournalEntry.created_at >= line.big_start, JournalEntry.created_at < line.big_end)
    sale_lines = db.session.scalar(
        select(func.count()).select_from(big_lines)
        .join(JournalEntry, JournalEntry.order_id == big_lines.c.order_id)
        .where(JournalEntry.kind == "payment", *in_month)
    )
    refund_lines = db.session.scalar(
        select(func.count()).select_from(RefundLine)
        .join(big_lines, big_lines.c.id == RefundLine.order_line_id)
        .join(Refund, Refund.id == RefundLine.refund_id)
        .join(JournalEntry, JournalEntry.source_key == literal("refund:") + cast(Refund.id, String))
        .where(*in_month)
    )
    example = db.session.scalar(
        select(Order.order_no).where(Order.user_id == learner_id, Order.status == "paid").order_by(Order.id).limit(1)
    )
    return BenchDataset(
        orders=seeded_order_count(catalog), learner_email=LEARNER_EMAIL, learner_id=learner_id,
        example_order_no=example or "", big_instructor_email=BIG_INSTRUCTOR_EMAIL,
        big_instructor_id=catalog.big_instructor_id, big_course_id=catalog.big_course.id,
        big_period=line.big_period, big_sale_lines=sale_lines or 0, big_refund_lines=refund_lines or 0,
        history_end=catalog.history_end, password=BENCH_PASSWORD,
    )
