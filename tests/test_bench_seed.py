"""`flask bench seed`: a seeded history is what the real code would have written.

A small history (a few hundred orders) is seeded, then held to the ledger's promises
(the same checks as tests/test_earnings_properties.py), to the foreign keys of every row
it wrote, and to the pages and statements the benchmarks measure on it.
"""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

from flask import Flask
from sqlalchemy import func, select

from app.accounts.models import User
from app.accounts.services import create_user
from app.analytics.models import JournalDayTotal
from app.analytics.money_flow import MoneyFigures, journal_figures
from app.admin.formatting import BeijingDayFilter
from app.benchdata import BENCH_PASSWORD, BIG_INSTRUCTOR_EMAIL, LEARNER_EMAIL, bench_dataset, seed_history
from app.benchdata.bulk import COLUMNS
from app.benchdata.catalog import BENCH_DOMAIN, COURSE_SLUG_PREFIX, FINANCE_EMAIL, SUPPORT_EMAIL
from app.cart.models import Coupon, CouponRedemption
from app.catalog.models import Course, Enrollment, Instructor
from app.checkout.models import Order, OrderLine
from app.checkout.services import OrderRequest, place_order
from app.earnings.periods import period_of
from app.earnings.statements import close_statement
from app.extensions import db
from app.ledger.models import JournalEntry
from app.ledger.services import post_entry
from app.payments.models import Refund, RefundLine
from app.timeutil import beijing, now
from tests.conftest import reset_database
from tests.helpers import login
from tests.test_earnings_properties import World, _check

ORDERS = 300
ADMIN_EMAIL = "ada@example.com"
ADMIN_PASSWORD = "staff-password-1"


def _seed(app: Flask, orders: int) -> int:
    with app.app_context():
        return seed_history(orders, batch_orders=1000).added


def _order_numbers(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Order.order_no).order_by(Order.order_no)))


def _world() -> World:
    """The seeded catalogue and orders, as the ledger property checks take them."""
    bench_user = User.email.like(f"%@{BENCH_DOMAIN}")
    instructors = list(db.session.scalars(select(Instructor.id).join(User, User.id == Instructor.user_id)
                                          .where(bench_user).order_by(Instructor.id)))
    courses = list(db.session.scalars(select(Course.id).where(Course.slug.like(COURSE_SLUG_PREFIX + "%"))))
    staff = dict(db.session.execute(
        select(User.email, User.id).where(User.email.in_((SUPPORT_EMAIL, FINANCE_EMAIL)))).all())
    paid = db.session.execute(select(Order.id, Order.user_id).where(Order.paid_at.is_not(None)).order_by(Order.id))
    orders = [(order_id, user_id) for order_id, user_id in paid]
    return World(instructors, courses, staff[SUPPORT_EMAIL], [staff[FINANCE_EMAIL]], orders=orders)


def test_seeding_adds_only_the_missing_orders_and_repeats_the_same_history(app: Flask, runner) -> None:
    result = runner.invoke(args=["bench", "seed", "--orders", str(ORDERS)])
    assert result.exit_code == 0, result.output
    assert f"{ORDERS} seeded orders present" in result.output
    again = runner.invoke(args=["bench", "seed", "--orders", str(ORDERS)])
    assert "nothing to add" in again.output
    assert _seed(app, ORDERS + 150) == 150
    with app.app_context():
        assert db.session.scalar(select(func.count(Order.id))) == ORDERS + 150
        assert bench_dataset().orders == ORDERS + 150
    in_steps = _order_numbers(app)
    reset_database(app)
    assert _seed(app, ORDERS + 150) == ORDERS + 150
    assert _order_numbers(app) == in_steps


def test_seeded_ledger_keeps_every_fen_explained(app: Flask) -> None:
    _seed(app, ORDERS)
    with app.app_context():
        kinds = Counter(db.session.scalars(select(JournalEntry.kind)))
        statuses = Counter(db.session.scalars(select(Order.status)))
        assert kinds["payment"] and kinds["release"] and kinds["refund"], kinds
        assert statuses["paid"] and statuses["closed"] and statuses["refunded"] + statuses["partially_refunded"]
        # Entries balance; each instructor's pending + available is their shares of sales
        # less refunds; shares, fees and refunds add up; open statements agree.
        _check(_world())
        for coupon in db.session.scalars(select(Coupon)):
            live = db.session.scalar(select(func.count(CouponRedemption.id)).where(
                CouponRedemption.coupon_id == coupon.id, CouponRedemption.released_at.is_(None)))
            assert coupon.redeemed_count == live > 0


def test_seeding_stores_the_money_days_of_its_history_as_the_journal_sums_them(app: Flask) -> None:
    _seed(app, ORDERS)
    with app.app_context():
        stored = {row.day: row for row in db.session.scalars(select(JournalDayTotal))}
        first, last = min(stored), max(stored)
        assert last == beijing(now()).date() - timedelta(days=1)  # every ended day, none still open
        journal = journal_figures(first, last)
        assert sum(figures.sales_fen for figures in journal.values()) > 0
        for day, row in stored.items():
            figures = journal.get(day, MoneyFigures())
            assert (row.sales_fen, row.refunds_fen, row.platform_revenue_fen, row.instructor_earnings_fen) == (
                figures.sales_fen, figures.refunds_fen, figures.platform_revenue_fen,
                figures.instructor_earnings_fen), day
        # The seeded sales are the orders the history paid, to the fen.
        paid = db.session.scalar(select(func.sum(Order.total_fen)).where(Order.paid_at.is_not(None)))
        assert sum(figures.sales_fen for figures in journal.values()) == paid


def test_paid_orders_hold_their_courses_and_unpaid_ones_nothing(app: Flask) -> None:
    _seed(app, ORDERS)
    with app.app_context():
        refunded_lines = set(db.session.scalars(
            select(RefundLine.order_line_id).join(Refund).where(Refund.status == "succeeded")))
        for order in db.session.scalars(select(Order)):
            enrollments = {row.course_id: row for row in db.session.scalars(
                select(Enrollment).where(Enrollment.order_id == order.id))}
            if order.status == "closed":
                assert enrollments == {} and order.paid_at is None and order.closed_at is not None
                continue
            assert {line.course_id for line in order.lines} == set(enrollments)
            for line in order.lines:
                assert (enrollments[line.course_id].revoked_at is not None) == (line.id in refunded_lines)


def test_every_seeded_row_points_at_a_row_that_exists(app: Flask) -> None:
    """On PostgreSQL the seeder writes with the foreign-key triggers off, so the keys
    are checked here, table by table."""
    _seed(app, ORDERS)
    with app.app_context():
        for name in COLUMNS:
            table = db.metadata.tables[name]
            for key in table.foreign_keys:
                parent = key.column.table
                dangling = db.session.scalar(
                    select(func.count()).select_from(table)
                    .outerjoin(parent, key.parent == key.column)
                    .where(key.parent.is_not(None), key.column.is_(None))
                )
                assert dangling == 0, f"{name}.{key.parent.name} -> {parent.name}"


def test_the_app_writes_after_the_seeder_without_id_clashes(app: Flask) -> None:
    _seed(app, ORDERS)
    with app.app_context():
        learner_id = create_user("new-learner@example.com", "correct-horse", "New")
        course_id = db.session.scalar(select(Course.id).where(Course.slug == f"{COURSE_SLUG_PREFIX}000"))
        order_id = place_order(OrderRequest(learner_id, (course_id,), None, "alipay"))
        post_entry("adjustment", "bench-test:1", [("platform:revenue", 100), ("platform:bank", -100)])
        db.session.commit()
        assert order_id > db.session.scalar(
            select(func.max(Order.id)).where(Order.user_id != learner_id))


def test_big_instructors_month_closes_into_a_statement_of_the_seeded_sales(app: Flask) -> None:
    _seed(app, ORDERS)
    with app.app_context():
        dataset = bench_dataset()
        assert dataset is not None
        assert dataset.big_period == "2026-10"  # the clock's previous month, Beijing time
        assert dataset.big_instructor_email == BIG_INSTRUCTOR_EMAIL
        sold = [line for line in db.session.scalars(
                    select(OrderLine).where(OrderLine.course_id == dataset.big_course_id))
                if line.order.paid_at is not None and period_of(line.order.paid_at) == dataset.big_period]
        assert dataset.big_sale_lines == len(sold) > ORDERS // 20
        statement = close_statement(dataset.big_instructor_id, dataset.big_period)
        db.session.commit()
        kinds = Counter(line.kind for line in statement.lines)
        assert kinds["sale"] == dataset.big_sale_lines and kinds["refund"] == dataset.big_refund_lines
        assert set(kinds) <= {"sale", "refund"}
        assert statement.sales_fen == sum(line.shares[0].share_fen for line in sold)
        order_numbers = {line.order_no for line in statement.lines}
        # The statement agrees with the ledger and reads back byte for byte.
        _check(_world())
    client = app.test_client()
    login(client, BIG_INSTRUCTOR_EMAIL, BENCH_PASSWORD)
    download = client.get(f"/earnings/statements/{dataset.big_period}.csv")
    assert download.status_code == 200
    text = download.data.decode("utf-8-sig")
    assert all(order_no in text for order_no in order_numbers)


def test_back_office_order_list_search_and_day_filter_work_on_seeded_orders(app: Flask) -> None:
    _seed(app, ORDERS)
    with app.app_context():
        create_user(ADMIN_EMAIL, ADMIN_PASSWORD, "Ada", role="admin")
        db.session.commit()
        dataset = bench_dataset()
        example = db.session.scalar(select(Order).where(Order.order_no == dataset.example_order_no))
        assert example.user_id == dataset.learner_id and example.status == "paid"
        placed_on = beijing(example.created_at).date()
        orders_view = next(view for view in app.extensions["cashier.admin"]._views
                           if getattr(view, "endpoint", None) == "order")
        created_filter = next(index for index, found in enumerate(orders_view._filters)
                              if isinstance(found, BeijingDayFilter) and found.name == "Created")
    client = app.test_client()
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert client.get("/admin/order/").status_code == 200
    found = client.get(f"/admin/order/?search={LEARNER_EMAIL}")
    assert found.status_code == 200 and dataset.example_order_no in found.text
    on_day = client.get(f"/admin/order/?flt0_{created_filter}={placed_on.isoformat()}")
    assert on_day.status_code == 200 and dataset.example_order_no in on_day.text
    assert client.get(f"/admin/order/{example.id}/").status_code == 200


def test_seeding_refuses_a_production_app_and_writes_nothing(app: Flask, runner) -> None:
    app.config["APP_ENV"] = "production"
    result = runner.invoke(args=["bench", "seed", "--orders", str(ORDERS)])
    assert result.exit_code != 0
    assert "production" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0
        assert db.session.scalar(select(func.count(Order.id))) == 0
