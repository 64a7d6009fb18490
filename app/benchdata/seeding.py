"""Seeding a payment history up to N orders, adding only what is missing.

The seeded orders are the bench learners' orders placed before the history's end (the
app's own orders come later, at real time), and they are always orders 0 … n−1 of the
plan: batches commit whole and in order, so even a crash leaves such a prefix. A run
continues at n.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from time import monotonic
from typing import Callable

from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from werkzeug.security import generate_password_hash

from app.accounts.models import User
from app.analytics import money_flow
from app.analytics import rollup as analytics_rollup
from app.benchdata.books import Books, Rules
from app.benchdata.bulk import BatchRows, IdPool
from app.benchdata.catalog import BENCH_DOMAIN, BENCH_PASSWORD, HISTORY, BenchCatalog, ensure_catalog
from app.benchdata.history import CHUNK, ChunkPlan, Timeline, order_no, plan_chunk, timeline
from app.benchdata.writers import BackgroundWriter, InlineWriter
from app.cart.coupons import as_discount
from app.cart.models import Coupon
from app.checkout.models import Order
from app.extensions import db
from app.timeutil import BEIJING, beijing, from_aware, now

BATCH_ORDERS = 20_000
# Tables a run fills, analysed at its end so the planner knows their new sizes at once.
ANALYSED = ("users", "orders", "order_lines", "order_line_shares", "payment_attempts", "notification_inbox",
            "enrollments", "journal_entries", "postings", "refunds", "refund_lines", "coupon_redemptions",
            "audit_log")


class SeedRefused(RuntimeError):
    """Seeding would write where it must not, or onto data it does not recognise."""


@dataclass(frozen=True)
class SeedRun:
    present_before: int
    present: int
    seconds: float

    @property
    def added(self) -> int:
        return self.present - self.present_before


def seeded_order_count(catalog: BenchCatalog) -> int:
    return db.session.scalar(
        select(func.count(Order.id))
        .join(User, User.id == Order.user_id)
        .where(User.email.like(f"%@{BENCH_DOMAIN}"), Order.created_at < catalog.history_end)
    ) or 0


def seed_history(target_orders: int, batch_orders: int = BATCH_ORDERS,
                 progress: Callable[[int, float], None] | None = None) -> SeedRun:
    """Bring the seeded orders up to ``target_orders``; commits once per batch."""
    if current_app.config["APP_ENV"] == "production":
        raise SeedRefused("refusing to seed benchmark data into a production database (APP_ENV=production)")
    started = monotonic()
    password_hash = generate_password_hash(BENCH_PASSWORD)
    catalog = ensure_catalog(_start_of_beijing_day(now()), password_hash)
    db.session.commit()
    line = timeline(catalog.history_end, HISTORY)
    rules = _rules()
    present_before = seeded_order_count(catalog)
    _check_prefix(catalog, line, rules, present_before)
    if present_before >= target_orders:
        return SeedRun(present_before, present_before, monotonic() - started)
    coupons = db.session.scalars(select(Coupon).where(Coupon.id.in_(catalog.coupon_ids.values()))).all()
    seeder = _Seeder(catalog, line, Books(catalog, line, rules, {c.code: as_discount(c) for c in coupons}),
                     password_hash)
    db.session.commit()

    def committed(present: int) -> None:
        if progress is not None:
            progress(present, monotonic() - started)

    postgres = db.engine.dialect.name == "postgresql"
    writer = BackgroundWriter(db.engine, committed) if postgres else InlineWriter(committed)
    # On PostgreSQL ids and lookups go through a connection of their own, outside the
    # writer's transactions; on SQLite through the batch's own transaction.
    side = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") if postgres else None
    try:
        for first in range(present_before, target_orders, batch_orders):
            end = min(target_orders, first + batch_orders)
            writer.submit(seeder.rows_for(first, end, side or db.session.connection()), end)
    except BaseException:
        writer.abandon()
        raise
    finally:
        if side is not None:
            side.close()
    writer.close()
    if postgres:
        db.session.execute(text("ANALYZE " + ", ".join(ANALYSED)))
        db.session.commit()
    # The history was written behind the app's back, into days the analytics rollup and
    # the journal's day totals may hold as final: derive them again, as the tick would
    # have as the days happened.
    history_days = (beijing(line.start).date(), beijing(line.end).date())
    analytics_rollup.forget(*history_days)
    analytics_rollup.refresh(*history_days)
    money_flow.forget_stored_days()
    while money_flow.store_ended_days():
        pass
    db.session.commit()
    return SeedRun(present_before, target_orders, monotonic() - started)


def _start_of_beijing_day(moment: datetime) -> datetime:
    """Where a new history ends (naive UTC): at the start of the day, so a fresh database
    seeded any time that day holds the same history, and the month before it is the
    month before today."""
    return from_aware(datetime.combine(beijing(moment).date(), time(), tzinfo=BEIJING))


def _rules() -> Rules:
    config = current_app.config
    return Rules(tax_rate=config["TAX_RATE"], order_ttl=timedelta(minutes=config["ORDER_TTL_MINUTES"]),
                 refund_window=timedelta(days=config["REFUND_WINDOW_DAYS"]),
                 large_refund_fen=config["LARGE_REFUND_FEN"])


def _check_prefix(catalog: BenchCatalog, line: Timeline, rules: Rules, present: int) -> None:
    """The orders counted are the plan's first ones: the last of them exists, the next
    does not. Anything else means they are not what this seeder wrote."""
    def exists(number: int) -> bool:
        plan = plan_chunk(number // CHUNK, catalog, line, rules.order_ttl).orders[number % CHUNK]
        return db.session.scalar(select(Order.id).where(Order.order_no == order_no(plan))) is not None

    if (present and not exists(present - 1)) or exists(present):
        raise SeedRefused(f"the {present} bench orders found are not the ones this seeder writes "
                          "(another catalogue, or other settings?); seed a fresh database")


class _Seeder:
    """Builds batches of planned orders, with the learners they need."""

    def __init__(self, catalog: BenchCatalog, line: Timeline, books: Books, password_hash: str) -> None:
        self.catalog, self.line, self.books, self.password_hash = catalog, line, books, password_hash
        self.ids = IdPool()
        self._plan: ChunkPlan | None = None
        self._learner_ids: list[int] = []

    def rows_for(self, first: int, end: int, connection: Connection) -> BatchRows:
        """The rows of orders first … end−1; ids are drawn through ``connection``."""
        self.ids.begin_batch(connection)
        rows = BatchRows()

        def take(table: str) -> int:
            return self.ids.take(connection, table)

        for number in range(first, end):
            chunk, slot = divmod(number, CHUNK)
            if self._plan is None or self._plan.chunk != chunk:
                self._start_chunk(chunk, slot, rows, take, connection)
            plan = self._plan.orders[slot]  # type: ignore[union-attr]
            self.books.add_order(rows, take, plan, self._learner_ids[plan.learner])
        return rows

    def _start_chunk(self, chunk: int, slot: int, rows: BatchRows, take: Callable[[str], int],
                     connection: Connection) -> None:
        """Plan the chunk and give its learners ids: their accounts when an earlier run
        began the chunk (``slot`` > 0), new rows otherwise."""
        self._plan = plan_chunk(chunk, self.catalog, self.line, self.books.rules.order_ttl)
        existing: dict[str, int] = {}
        if slot > 0:
            emails = [learner.email for learner in self._plan.learners]
            existing = dict(connection.execute(select(User.email, User.id).where(User.email.in_(emails))).all())
        self._learner_ids = []
        for learner in self._plan.learners:
            user_id = existing.get(learner.email)
            if user_id is None:
                user_id = take("users")
                rows.tables["users"].append((user_id, learner.email, learner.name, self.password_hash, "learner",
                                             True, learner.registered_at, 0, 0, 1))
            self._learner_ids.append(user_id)
