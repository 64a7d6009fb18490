"""The analytics rollup (app/analytics/rollup.py): on generated data, the page's figures
from the rollup equal the live queries' for any range, rolled up whole, in part or not
at all; a day that can still change is refreshed after a late payment or refund; a final
day is never recomputed; the tick's step is idempotent; and the page still shows the
worked examples when it reads them from the rollup. On the database under test (SQLite,
or PostgreSQL with TEST_POSTGRES_URL)."""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select, text, update

from app.analytics import queries, rollup
from app.analytics.models import (AnalyticsDay, AnalyticsDayChannel, AnalyticsDayCourse, AnalyticsDayFundFlow,
                                  AnalyticsDaySlowest)
from app.analytics.queries import DayRange
from app.analytics.report import dashboard
from app.checkout.models import Order
from app.extensions import db
from app.jobs.periodic import tick
from app.ledger import accounts
from app.ledger.services import post_entry
from app.payments.models import PaymentAttempt
from tests.admin import conftest as back_office
from tests.conftest import Clock
from tests.helpers import make_course
from tests.test_analytics import Attempt, Sale, paid_attempt, store

staff = back_office.staff
client_as = back_office.client_as

# Ten Beijing days of history, 2026-11-01 … 2026-11-10; "today" is the 12th.
FIRST = date(2026, 11, 1)
FIRST_START = datetime(2026, 10, 31, 16, 0)  # its midnight in UTC
HISTORY_DAYS = 10
TODAY = date(2026, 11, 12)
NOW = datetime(2026, 11, 12, 4, 0)  # 12:00 in Beijing
ALL_DAYS = DayRange(FIRST - timedelta(days=2), TODAY + timedelta(days=1))
ALL_TABLES = (AnalyticsDay, AnalyticsDayChannel, AnalyticsDayCourse, AnalyticsDayFundFlow, AnalyticsDaySlowest)


def generated_sales(course_ids: list[int], seed: int = 11) -> list[Sale]:
    """Orders at every hour of ten days and of today: unstarted, unpaid, switched
    channel, paid with and without a reported scan, paid after midnight (a day later
    than created), refunded in part or whole, and paid before the timeline was kept."""
    draw = random.Random(seed)
    sales = []
    for day in range(HISTORY_DAYS + 2):
        for _ in range(draw.randint(25, 40)):
            created = FIRST_START + timedelta(days=day, minutes=draw.randint(0, 24 * 60 - 1))
            if created >= NOW:
                continue
            courses = draw.sample(course_ids, draw.randint(1, 2))
            kind = draw.random()
            opened = created + timedelta(seconds=draw.randint(5, 300))
            channel = draw.choice(("alipay", "wechat"))
            if kind < 0.1:
                sales.append(Sale(created_at=created, course_ids=courses))
                continue
            if kind < 0.3:
                attempts = [Attempt(channel, "closed", opened)]
                if draw.random() < 0.5:
                    attempts.append(Attempt("wechat" if channel == "alipay" else "alipay", "closed", opened,
                                            channel_opened_at=opened if draw.random() < 0.5 else None))
                sales.append(Sale(created_at=created, status="closed", attempts=attempts, course_ids=courses))
                continue
            # Paid: some an hour and more later, past midnight for the late evening's orders.
            paid = paid_attempt(opened, channel, draw.choice((draw.randint(3, 900), draw.randint(3600, 7200))),
                                draw.randint(0, 30), reported_opening=channel == "alipay" and draw.random() < 0.7)
            if draw.random() < 0.05:
                paid.booked_at = None  # paid before the timeline was recorded
            attempts = ([Attempt("wechat" if channel == "alipay" else "alipay", "closed", opened)]
                        if draw.random() < 0.15 else []) + [paid]
            status = draw.choice(("paid",) * 8 + ("partially_refunded", "refunded"))
            sales.append(Sale(created_at=created, status=status, attempts=attempts, course_ids=courses))
    return sales


@pytest.fixture
def history(app: Flask, clock: Clock) -> list[int]:
    """The generated history, the clock at NOW; the course ids."""
    clock.current = NOW
    with app.app_context():
        course_ids = [make_course(100 * (k + 1), slug=f"course{k}") for k in range(5)]
        store(generated_sales(course_ids))
    return course_ids


def assert_rollup_equals_live(days: DayRange) -> None:
    assert rollup.order_outcomes(days) == queries.order_outcomes(days)
    assert rollup.success_by_course(days) == queries.success_by_course(days)
    assert rollup.fund_flow_summaries(days) == queries.fund_flow_summaries(days)
    assert rollup.slowest_payments(days) == queries.slowest_payments(days)


def ranges() -> list[DayRange]:
    """Whole, within, across today, before the first order, and single days."""
    return [ALL_DAYS, DayRange(FIRST, FIRST + timedelta(days=HISTORY_DAYS - 1)),
            DayRange(FIRST + timedelta(days=3), TODAY), DayRange(FIRST - timedelta(days=5), FIRST + timedelta(days=1)),
            DayRange(FIRST + timedelta(days=4), FIRST + timedelta(days=4)), DayRange(TODAY, TODAY)]


def refresh_as_the_tick() -> int:
    """The tick's step alone (the whole tick would also expire the pending orders)."""
    days = rollup.refresh_due()
    db.session.commit()
    return days


def rollup_rows() -> dict[str, list[tuple]]:
    return {model.__tablename__: [tuple(row) for row in db.session.execute(
        select(*model.__table__.columns).order_by(*model.__table__.primary_key.columns))]
        for model in ALL_TABLES}


# --- equal to the live computation ---------------------------------------------------

def test_the_rolled_up_figures_equal_the_live_ones_for_any_range(app: Flask, history: list[int]) -> None:
    with app.app_context():
        assert rollup.refresh_due() == HISTORY_DAYS + 1  # the 1st … the 11th; today stays live
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(AnalyticsDay)) == HISTORY_DAYS + 1
        assert rollup.coverage(ALL_DAYS).live == DayRange(TODAY, TODAY + timedelta(days=1))
        for days in ranges():
            assert_rollup_equals_live(days)
        outcomes = rollup.order_outcomes(ALL_DAYS)
    # The data is worth comparing: every kind of day and figure is there.
    assert len(outcomes) == HISTORY_DAYS + 2
    assert all(o.rate.succeeded and o.orders > o.qr_shown > o.qr_opened for o in outcomes.values())
    assert sum(o.refunded for o in outcomes.values()) > HISTORY_DAYS


def test_the_page_is_the_same_with_the_rollup_in_part_or_not_at_all(app: Flask, history: list[int]) -> None:
    days = DayRange(FIRST, TODAY)
    with app.app_context():
        live = dashboard(days)
        rollup.refresh(FIRST, FIRST + timedelta(days=2))
        rollup.refresh(FIRST + timedelta(days=6), FIRST + timedelta(days=7))  # a gap before and after
        db.session.commit()
        cover = rollup.coverage(days)
        assert cover.live == DayRange(FIRST + timedelta(days=3), TODAY)
        assert dashboard(days) == live
        assert_rollup_equals_live(days)
        rollup.refresh_due()
        db.session.commit()
        assert rollup.coverage(days).live == DayRange(TODAY, TODAY)
        assert dashboard(days) == live


# --- days that can still change, and days that cannot --------------------------------

def test_a_day_is_refreshed_after_a_late_payment_and_a_refund(app: Flask, clock: Clock) -> None:
    clock.current = NOW
    created = FIRST_START + timedelta(days=HISTORY_DAYS, hours=23)  # the 11th, 23:00 in Beijing
    with app.app_context():
        store([Sale(created_at=created, status="paid", attempts=[paid_attempt(created)]),
               Sale(created_at=created, status="pending", attempts=[Attempt("wechat", "created", created)])])
        assert refresh_as_the_tick() == 1  # the 11th: the first order's day, up to yesterday
        day = DayRange(date(2026, 11, 11), date(2026, 11, 11))
        before = rollup.order_outcomes(day)["2026-11-11"]
        assert (before.rate.started, before.rate.succeeded, before.refunded) == (2, 1, 0)
        # After midnight the open QR is paid (the channel's time) and the first order refunded.
        paid_at = created + timedelta(hours=2)
        paid_id, pending_id = sorted(db.session.scalars(select(Order.id)))
        db.session.execute(update(PaymentAttempt).where(PaymentAttempt.order_id == pending_id).values(
            status="succeeded", succeeded_at=paid_at, booked_at=paid_at + timedelta(seconds=4)))
        db.session.execute(update(Order).where(Order.id == pending_id).values(status="paid", paid_at=paid_at))
        db.session.execute(update(Order).where(Order.id == paid_id).values(status="refunded"))
        db.session.commit()
        assert refresh_as_the_tick() == 0  # refreshed a moment ago
        assert rollup.order_outcomes(day)["2026-11-11"] == before
        clock.advance(minutes=6)
        assert refresh_as_the_tick() == 1  # not final yet, and older than STALE_AFTER
        after = rollup.order_outcomes(day)["2026-11-11"]
        assert (after.rate.started, after.rate.succeeded, after.refunded) == (2, 2, 1)
        assert after.rate_by_channel["wechat"].succeeded == 1
        assert_rollup_equals_live(DayRange(FIRST, TODAY))
        # The late payment counts on the day it was paid in the fund-flow figures.
        [paid_day] = rollup.fund_flow_summaries(DayRange(TODAY, TODAY)).by_day
        assert (paid_day.day, paid_day.total_time.count) == ("2026-11-12", 1)


def test_a_final_day_is_not_recomputed(app: Flask, clock: Clock, history: list[int]) -> None:
    """Past the order deadline, the refund window and the settling time a day is final:
    a change to its orders that books nothing (a hand edit) is not picked up."""
    with app.app_context():
        final_from = rollup.final_after(FIRST)
        assert final_from == datetime(2026, 11, 1, 16, 0) + timedelta(minutes=15, days=7) + rollup.SETTLING
        clock.current = final_from  # the 16th, 00:15 in Beijing
        assert refresh_as_the_tick() == 15  # the 1st … the 15th
        first_day = db.session.get(AnalyticsDay, FIRST)
        assert first_day.final and not db.session.get(AnalyticsDay, FIRST + timedelta(days=1)).final
        computed_at, rows = first_day.computed_at, rollup_rows()
        db.session.execute(insert(Order), [{
            "order_no": "LATE000001", "user_id": db.session.scalar(select(Order.user_id).limit(1)),
            "status": "pending", "subtotal_fen": 100, "discount_fen": 0, "tax_fen": 0, "total_fen": 100,
            "created_at": FIRST_START + timedelta(hours=1), "expires_at": FIRST_START + timedelta(hours=2)}])
        db.session.commit()
        clock.advance(days=1)
        # The 2nd … the 16th: not final, or never rolled up; the 1st is left alone.
        assert refresh_as_the_tick() == 15
        assert db.session.get(AnalyticsDay, FIRST + timedelta(days=1)).final
        db.session.expire_all()
        assert db.session.get(AnalyticsDay, FIRST).computed_at == computed_at
        first_day_rows = lambda tables: {name: [row for row in found if row[0] == FIRST]  # noqa: E731
                                         for name, found in tables.items()}
        assert first_day_rows(rollup_rows()) == first_day_rows(rows)
        day = DayRange(FIRST, FIRST)
        assert rollup.order_outcomes(day)["2026-11-01"].orders + 1 == queries.order_outcomes(day)["2026-11-01"].orders


def test_a_booking_weeks_late_reopens_its_final_day(app: Flask, clock: Clock, history: list[int]) -> None:
    """A refund asked for in the window but approved and completed after the day went
    final: its journal entry sends the order's day back to the rollup, once."""
    with app.app_context():
        clock.current = rollup.final_after(FIRST) + timedelta(days=1)
        refresh_as_the_tick()
        assert db.session.get(AnalyticsDay, FIRST).final
        day = DayRange(FIRST, FIRST)
        before = rollup.order_outcomes(day)["2026-11-01"].refunded
        paid_id = db.session.scalar(select(Order.id).where(
            Order.status == "paid", Order.created_at >= FIRST_START, Order.created_at < FIRST_START + timedelta(days=1)))
        clock.advance(minutes=10)
        db.session.execute(update(Order).where(Order.id == paid_id).values(status="refunded"))
        post_entry("refund", f"refund:late:{paid_id}", [(accounts.PLATFORM_REVENUE, 100),
                                                        (accounts.channel("alipay"), -100)], order_id=paid_id)
        db.session.commit()
        clock.advance(minutes=1)
        assert FIRST in rollup.due_days(clock.current)
        refresh_as_the_tick()
        assert rollup.order_outcomes(day)["2026-11-01"].refunded == before + 1
        assert_rollup_equals_live(DayRange(FIRST, TODAY))
        # Computed within COMMIT_SLACK of the booking (a transaction stamped as early may
        # commit later): once more, and then, computed well after it, left alone.
        clock.advance(minutes=3)
        assert FIRST in rollup.due_days(clock.current)
        refresh_as_the_tick()
        assert FIRST not in rollup.due_days(clock.current + timedelta(minutes=1))


def test_the_tick_step_is_idempotent(app: Flask, history: list[int]) -> None:
    with app.app_context():
        assert tick()["analytics_rollup"] == HISTORY_DAYS + 1
        rows = rollup_rows()
        assert tick()["analytics_rollup"] == 0
        assert rollup_rows() == rows
        # Refreshing the same days again replaces their rows: no duplicates, same figures.
        assert rollup.refresh(FIRST, TODAY) == HISTORY_DAYS + 1
        db.session.commit()
        assert rollup_rows() == rows  # the clock stood still: computed at the same moment
    assert len(rows["analytics_days"]) == HISTORY_DAYS + 1 and rows["analytics_day_slowest"]


def test_a_refresh_waits_for_none_while_another_holds_it(app: Flask, history: list[int], is_postgres: bool) -> None:
    """Two ticks at once on PostgreSQL: the second finds the rollup's lock taken and
    leaves the round to the first, instead of writing the same days (SQLite's writers
    are one at a time anyway: BEGIN IMMEDIATE)."""
    if not is_postgres:
        pytest.skip("the advisory lock is PostgreSQL's")
    with app.app_context():
        with db.engine.connect() as other:
            assert other.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": rollup.LOCK_KEY})
            assert rollup.refresh_due() == 0
            db.session.rollback()
            other.rollback()
        assert rollup.refresh_due() == HISTORY_DAYS + 1
        db.session.commit()


def test_the_days_before_the_first_order_and_today_are_never_rolled_up(app: Flask, history: list[int]) -> None:
    with app.app_context():
        rollup.refresh(FIRST - timedelta(days=30), TODAY + timedelta(days=3))
        db.session.commit()
        days = set(db.session.scalars(select(AnalyticsDay.day)))
    # Asked for, the days before the orders are rolled up as empty; today and later never.
    assert max(days) == TODAY - timedelta(days=1) and min(days) == FIRST - timedelta(days=30)


# --- the page reads the rollup -------------------------------------------------------

def test_the_page_shows_the_worked_examples_from_the_rollup(app: Flask, clock: Clock,
                                                           client_as: Callable[[str], FlaskClient]) -> None:
    clock.current = NOW
    opened = FIRST_START + timedelta(days=2, hours=3)  # the 3rd
    paid = [Sale(created_at=opened, status="paid", attempts=[paid_attempt(opened)]) for _ in range(949)]
    paid.append(Sale(created_at=opened, status="paid",
                     attempts=[paid_attempt(opened, channel_seconds=3600, system_seconds=1800)]))
    unpaid = [Sale(created_at=opened, status="closed", attempts=[Attempt(qr_issued_at=opened, status="closed")])
              for _ in range(50)]
    with app.app_context():
        store(paid + unpaid)
        assert tick()["analytics_rollup"] == HISTORY_DAYS - 1  # the 3rd … the 11th
        assert db.session.get(AnalyticsDay, date(2026, 11, 3)).started == 1000
        # The live queries would not be asked: the range is rolled up whole.
        assert rollup.coverage(DayRange(date(2026, 11, 3), date(2026, 11, 4))).live is None
    page = client_as("finance").get("/admin/analytics/?first=2026-11-03&last=2026-11-04")
    assert page.status_code == 200
    assert "95.00 %" in page.text and "1h 30m 00s" in page.text
    download = client_as("finance").get("/admin/analytics/csv/success_rate?first=2026-11-03&last=2026-11-04")
    assert download.text.splitlines()[1:] == ["2026-11-03,9500,9500,", "2026-11-04,,,"]
