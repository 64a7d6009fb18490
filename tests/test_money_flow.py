"""Sales, refunds, platform revenue and instructor earnings per Beijing day and month
(issue 11), summed from the journal: known answers on hand-made entries, the same
figures from real sales and refunds, stored days equal to the journal's, and the page
with its CSV."""
from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.accounts.services import create_user
from app.analytics.models import JournalDayTotal
from app.analytics.money_flow import (MoneyFigures, daily_figures, journal_figures,
                                      monthly_figures, store_ended_days)
from app.analytics.money_report import first_month_shown
from app.checkout.models import Order
from app.earnings.adjustments import post_adjustment
from app.extensions import db
from app.jobs.periodic import tick
from app.ledger import accounts
from app.ledger.services import post_entry
from app.payments.models import Refund
from app.timeutil import beijing
from tests.admin import conftest as back_office
from tests.earnings_helpers import make_course_of, make_instructor, refund_lines, sell

staff = back_office.staff
client_as = back_office.client_as

# Beijing 2026-11-20 is [2026-11-19 16:00, 2026-11-20 16:00) UTC.
NOV_20 = date(2026, 11, 20)
NOV_20_START = datetime(2026, 11, 19, 16, 0)


def post_sale_entry(kind: str, total: int, tax: int, share: int, instructor_id: int = 1, key: str = "") -> None:
    """A sale as the journal books it: the channel (less its fee) and the fee in, tax,
    the instructor's pending share and the platform's rest out."""
    fee = total * 6 // 1000
    post_entry(kind, key or f"{kind}:{total}:{share}", [
        (accounts.channel("alipay"), total - fee), (accounts.CHANNEL_FEES, fee), (accounts.TAX_PAYABLE, -tax),
        (accounts.instructor_pending(instructor_id), -share), (accounts.PLATFORM_REVENUE, -(total - tax - share)),
    ])


def test_a_day_sums_sales_refunds_revenue_and_earnings_from_its_postings(app: Flask, clock) -> None:
    with app.app_context():
        clock.current = NOV_20_START + timedelta(hours=1)
        post_sale_entry("payment", 10000, 566, 6604, key="payment:1")
        post_sale_entry("wallet_payment", 4990, 0, 3493, key="wallet_payment:2")
        # A refund reverses a sale's legs: its debits are the refunded amount.
        post_entry("refund", "refund:1", [
            (accounts.TAX_PAYABLE, 566), (accounts.instructor_pending(1), 6604), (accounts.PLATFORM_REVENUE, 2830),
            (accounts.channel("alipay"), -9940), (accounts.CHANNEL_FEES, -60)])
        # Money moved, not earned or sold: a top-up, a payout, a release.
        post_entry("topup", "payment:9", [(accounts.channel("alipay"), 50000), (accounts.learner_wallet(7), -50000)])
        post_entry("payout", "payout:1", [(accounts.instructor_available(1), 3000), (accounts.PAYOUT_CLEARING, -3000)])
        post_entry("release", "release:1", [(accounts.instructor_pending(1), 3493),
                                            (accounts.instructor_available(1), -3493)])
        # Finance's adjustment in the instructor's favour is earnings; the pool's share too.
        post_entry("adjustment", "adjustment:1", [(accounts.instructor_available(1), -200),
                                                  (accounts.EARNINGS_ADJUSTMENTS, 200)])
        post_entry("membership_pool", "membership_pool:2026-10", [(accounts.PLATFORM_REVENUE, 1000),
                                                                   (accounts.instructor_pending(1), -1000)])
        # The next Beijing day's first minute counts on the next day.
        clock.current = NOV_20_START + timedelta(days=1)
        post_sale_entry("membership_sale", 9900, 0, 0, key="payment:3")
        db.session.commit()

        figures = journal_figures(NOV_20, NOV_20 + timedelta(days=1))
        assert figures[NOV_20] == MoneyFigures(
            sales_fen=10000 + 4990, refunds_fen=10000,
            platform_revenue_fen=(10000 - 566 - 6604) + (4990 - 3493) - 2830 - 1000,
            instructor_earnings_fen=6604 + 3493 - 6604 + 200 + 1000)
        assert figures[NOV_20 + timedelta(days=1)] == MoneyFigures(9900, 0, 9900, 0)
        assert figures[NOV_20].net_sales_fen == 4990


def test_real_sales_and_refunds_add_up_to_the_orders_and_refunds_tables(app: Flask, clock) -> None:
    with app.app_context():
        learner = create_user("ann@example.com", "correct-horse", "Ann")
        support = create_user("sam@example.com", "staff-password", "Sam", role="support")
        finance = create_user("fay@example.com", "staff-password", "Fay", role="finance")
        db.session.commit()
        teacher = make_instructor("T", 7000)
        courses = [make_course_of(teacher, price, f"c{price}") for price in (10000, 4990, 3333)]
        first = sell(learner, courses[:2])
        second = sell(learner, courses[2:])
        line = db.session.get(Order, first).lines[0]
        refund_lines(first, learner, [line.id], [support])
        post_adjustment(teacher, 150, "missed lesson bonus", finance, uuid.uuid4().hex)
        db.session.commit()

        today = beijing(clock.current).date()
        figures = daily_figures(today, today)[today]
        orders = [db.session.get(Order, order_id) for order_id in (first, second)]
        assert figures.sales_fen == sum(order.total_fen for order in orders)
        assert figures.refunds_fen == db.session.scalar(select(func.sum(Refund.amount_fen))) == line.amount_fen
        shares = sum(share.share_fen for order in orders for line in order.lines for share in line.shares)
        refunded_shares = sum(share.share_fen for share in line.shares)
        assert figures.instructor_earnings_fen == shares - refunded_shares + 150


def test_stored_days_equal_the_journal_and_only_ended_days_are_stored(app: Flask, clock) -> None:
    with app.app_context():
        for offset in range(3):
            clock.current = NOV_20_START + timedelta(days=offset, hours=5)
            post_sale_entry("payment", 1000 * (offset + 1), 0, 700 * (offset + 1), key=f"payment:{offset}")
        db.session.commit()
        days = (NOV_20, NOV_20 + timedelta(days=2))
        live = daily_figures(*days)

        # 00:30 on the third day: the second day ended half an hour ago, which is not final yet.
        clock.current = NOV_20_START + timedelta(days=2, minutes=30)
        assert store_ended_days() == 1
        assert set(db.session.scalars(select(JournalDayTotal.day))) == {NOV_20}
        clock.current += timedelta(hours=1)
        assert store_ended_days() == 1
        assert store_ended_days() == 0  # stored days are never computed again
        db.session.commit()
        assert set(db.session.scalars(select(JournalDayTotal.day))) == {NOV_20, NOV_20 + timedelta(days=1)}
        # Today is read from the journal; the stored days give the same figures.
        assert daily_figures(*days) == live
        assert live[NOV_20 + timedelta(days=1)] == MoneyFigures(2000, 0, 600, 1400)


def test_a_stored_day_is_what_the_page_reads(app: Flask, clock) -> None:
    """Stored rows are read, not recomputed: changing one shows on the range (which is
    why only final days are stored)."""
    with app.app_context():
        clock.current = NOV_20_START + timedelta(hours=5)
        post_sale_entry("payment", 1000, 0, 700)
        clock.current += timedelta(days=2)
        store_ended_days()
        row = db.session.get(JournalDayTotal, NOV_20)
        row.sales_fen = 1
        db.session.commit()
        assert daily_figures(NOV_20, NOV_20)[NOV_20].sales_fen == 1


def test_days_with_no_entries_are_zero_and_the_tick_stores_them_once(app: Flask, clock) -> None:
    with app.app_context():
        clock.current = NOV_20_START + timedelta(hours=5)
        post_sale_entry("payment", 1000, 0, 700)
        db.session.commit()
        clock.current += timedelta(days=4)
        assert tick()["money_days"] == 4  # the sale's day and the three quiet days after it
        assert tick()["money_days"] == 0
        quiet = NOV_20 + timedelta(days=2)
        assert daily_figures(quiet, quiet)[quiet] == MoneyFigures()
        assert db.session.scalar(select(func.count()).select_from(JournalDayTotal)) == 4


def test_months_sum_their_days_up_to_the_last_day(app: Flask, clock) -> None:
    with app.app_context():
        for when, amount in ((datetime(2026, 10, 31, 15, 59), 100), (datetime(2026, 10, 31, 16, 0), 20),
                             (datetime(2026, 11, 19, 1, 0), 3)):
            clock.current = when
            post_sale_entry("payment", amount, 0, 0, key=f"payment:{amount}")
        clock.current = datetime(2026, 11, 25)
        store_ended_days()
        db.session.commit()
        months = monthly_figures(date(2026, 10, 1), date(2026, 11, 25))
        assert [(month, figures.sales_fen) for month, figures in months.items()] == [("2026-10", 100),
                                                                                     ("2026-11", 23)]


@pytest.mark.parametrize(("last", "first"), [(date(2026, 11, 20), date(2025, 12, 1)),
                                             (date(2026, 12, 31), date(2026, 1, 1)),
                                             (date(2027, 1, 5), date(2026, 2, 1))])
def test_the_months_shown_are_the_twelve_up_to_the_last_day(last: date, first: date) -> None:
    assert first_month_shown(last) == first


def test_finance_sees_the_money_page_with_its_csv(app: Flask, clock, client_as) -> None:
    with app.app_context():
        clock.current = NOV_20_START + timedelta(hours=5)
        post_sale_entry("payment", 12345, 0, 8000)
        db.session.commit()
    client: FlaskClient = client_as("finance")
    page = client.get("/admin/analytics/money?first=2026-11-19&last=2026-11-21")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'id="chart-money_daily"' in text and 'id="chart-money_monthly"' in text
    assert "¥123.45" in text and "¥43.45" in text  # the sale, and the platform's part of it
    answer = client.get("/admin/analytics/csv/money_daily?first=2026-11-19&last=2026-11-21")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert rows[0] == ["day", "Sales (fen)", "Refunds (fen)", "Platform revenue (fen)", "Instructor earnings (fen)"]
    assert rows[1:] == [["2026-11-19", "0", "0", "0", "0"], ["2026-11-20", "12345", "0", "4345", "8000"],
                        ["2026-11-21", "0", "0", "0", "0"]]
    monthly = client.get("/admin/analytics/csv/money_monthly?first=2026-11-19&last=2026-11-21")
    months = list(csv.reader(io.StringIO(monthly.get_data(as_text=True))))
    assert [row[0] for row in months[1:]][-2:] == ["2026-10", "2026-11"] and months[-1][1] == "12345"


def test_support_may_not_see_the_money_page(client_as) -> None:
    client: FlaskClient = client_as("support")
    assert client.get("/admin/analytics/money").status_code == 403
    assert client.get("/admin/analytics/csv/money_daily").status_code == 403
