"""Payment analytics (issue 11): the success rate, the fund-flow time and the funnel on
generated data with known answers, in pure Python and in SQL on the database under test;
the page's charts, their CSV, who may see them; and the timeline a real payment records."""
from __future__ import annotations

import csv
import io
import itertools
from xml.etree import ElementTree
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select, update

from app.analytics.measures import (DurationSummary, FundFlow, SuccessRate, duration_text, fund_flow, funnel,
                                    nearest_rank, percent_text, percentile, ratio_basis_points, success_rate,
                                    summarize, trend)
from app.analytics.queries import (DayRange, fund_flow_summary, funnel_counts, slowest_payments, success_by_channel,
                                   success_by_course, success_by_day)
from app.analytics.report import chart, chart_csv
from app.checkout.models import Order, OrderLine
from app.extensions import db
from app.payments.models import PaymentAttempt
from tests.admin import conftest as back_office
from tests.helpers import attempt_of, checkout, login, make_course, make_learner, pay_at_emulator

staff = back_office.staff
client_as = back_office.client_as
learner = back_office.learner

# 2026-11-20 in Beijing is [2026-11-19 16:00, 2026-11-20 16:00) in UTC.
DAY = date(2026, 11, 20)
DAY_START = datetime(2026, 11, 19, 16, 0)
ONE_DAY = DayRange(DAY, DAY)


# --- generated data ------------------------------------------------------------------

@dataclass
class Attempt:
    channel: str = "alipay"
    status: str = "created"
    qr_issued_at: datetime | None = None
    channel_opened_at: datetime | None = None
    succeeded_at: datetime | None = None
    booked_at: datetime | None = None


@dataclass
class Sale:
    created_at: datetime = DAY_START + timedelta(hours=2)
    status: str = "pending"
    attempts: list[Attempt] = field(default_factory=list)
    course_ids: list[int] = field(default_factory=list)


_numbers = itertools.count(1)


def paid_attempt(opened: datetime, channel: str = "alipay", channel_seconds: int = 60,
                 system_seconds: int = 2, reported_opening: bool = True) -> Attempt:
    """A paid attempt whose QR was shown at ``opened``, opened then (if the channel says
    so), paid ``channel_seconds`` later and booked ``system_seconds`` after that."""
    paid = opened + timedelta(seconds=channel_seconds)
    return Attempt(channel, "succeeded", qr_issued_at=opened,
                   channel_opened_at=opened if reported_opening else None,
                   succeeded_at=paid, booked_at=paid + timedelta(seconds=system_seconds))


def store(sales: list[Sale]) -> None:
    """The sales as rows, in bulk (a thousand orders in a few statements)."""
    user_id = make_learner(f"buyer{next(_numbers)}@example.com")
    order_rows = []
    for sale in sales:
        number = next(_numbers)
        order_rows.append({
            "order_no": f"AN{number:010d}", "user_id": user_id, "status": sale.status, "subtotal_fen": 100,
            "discount_fen": 0, "tax_fen": 0, "total_fen": 100, "created_at": sale.created_at,
            "expires_at": sale.created_at + timedelta(minutes=15),
            "paid_at": next((a.succeeded_at for a in sale.attempts if a.status == "succeeded"), None),
        })
    order_ids = list(db.session.scalars(insert(Order).returning(Order.id, sort_by_parameter_order=True),
                                        order_rows))
    attempts, lines = [], []
    for order_id, sale in zip(order_ids, sales):
        for attempt in sale.attempts:
            attempts.append({
                "order_id": order_id, "channel": attempt.channel, "out_trade_no": f"T{next(_numbers):012d}",
                "amount_fen": 100, "status": attempt.status, "expires_at": sale.created_at + timedelta(minutes=15),
                "created_at": sale.created_at, "qr_issued_at": attempt.qr_issued_at,
                "channel_opened_at": attempt.channel_opened_at, "succeeded_at": attempt.succeeded_at,
                "booked_at": attempt.booked_at,
            })
        for course_id in sale.course_ids:
            lines.append({"order_id": order_id, "course_id": course_id, "title": "课程", "instructor_id": 1,
                          "commission_bps": 7000, "list_price_fen": 100, "discount_fen": 0, "tax_fen": 0,
                          "amount_fen": 100})
    if attempts:
        db.session.execute(insert(PaymentAttempt), attempts)
    if lines:
        db.session.execute(insert(OrderLine), lines)
    db.session.commit()


# --- the success rate ----------------------------------------------------------------

def test_the_worked_example_950_paid_of_1000_that_started_a_payment_is_95_percent(app: Flask) -> None:
    opened = DAY_START + timedelta(hours=3)
    paid = [Sale(status="paid", attempts=[paid_attempt(opened)]) for _ in range(950)]
    # Unpaid: 30 whose QR was never paid, 20 that tried both channels in vain.
    unpaid = [Sale(status="closed", attempts=[Attempt(qr_issued_at=opened, status="closed")]) for _ in range(30)]
    unpaid += [Sale(status="closed", attempts=[Attempt("alipay", "closed", opened),
                                               Attempt("wechat", "closed", opened)]) for _ in range(20)]
    # Orders that never asked for a QR started no payment: not counted at all.
    never_started = [Sale() for _ in range(7)]
    with app.app_context():
        store(paid + unpaid + never_started)
        rate = success_by_day(ONE_DAY)
    assert rate == {"2026-11-20": SuccessRate(started=1000, succeeded=950)}
    assert rate["2026-11-20"].basis_points == 9500
    assert rate["2026-11-20"].percent == "95.00 %"


def test_the_success_rate_in_python_counts_orders_not_attempts() -> None:
    statuses = {1: ["closed", "succeeded"], 2: ["closed", "closed"], 3: [], 4: ["succeeded"]}
    assert success_rate(statuses) == SuccessRate(started=3, succeeded=2)
    assert SuccessRate(3, 2).basis_points == 6667  # 66.666… % rounds half up
    assert SuccessRate(0, 0).basis_points is None and SuccessRate(0, 0).percent == "—"


@pytest.mark.parametrize(("part", "whole", "basis_points"), [
    (950, 1000, 9500), (1, 3, 3333), (2, 3, 6667), (1, 8, 1250), (1, 20000, 1), (1, 20001, 0), (5, 5, 10000),
])
def test_ratios_are_exact_basis_points_rounded_half_up(part: int, whole: int, basis_points: int) -> None:
    assert ratio_basis_points(part, whole) == basis_points


def test_percent_text_has_two_decimals() -> None:
    assert [percent_text(value) for value in (9500, 6667, 5, 0, -125)] == [
        "95.00 %", "66.67 %", "0.05 %", "0.00 %", "-1.25 %"]


def test_the_trend_is_the_change_on_the_day_before() -> None:
    assert trend([9500, 9400, None, 9000, 9100]) == [None, -100, None, None, 100]


def test_a_day_is_a_beijing_day(app: Flask) -> None:
    """An order at 23:59:59 Beijing time counts on that day; one a second later, the next."""
    opened = DAY_START
    last_second = Sale(created_at=DAY_START + timedelta(days=1, seconds=-1), status="paid",
                       attempts=[paid_attempt(opened)])
    next_day = Sale(created_at=DAY_START + timedelta(days=1), attempts=[Attempt(qr_issued_at=opened)])
    with app.app_context():
        store([last_second, next_day])
        rates = success_by_day(DayRange(DAY, DAY + timedelta(days=1)))
    assert rates == {"2026-11-20": SuccessRate(1, 1), "2026-11-21": SuccessRate(1, 0)}


def test_the_success_rate_splits_by_channel_and_course(app: Flask) -> None:
    opened = DAY_START + timedelta(hours=1)
    with app.app_context():
        python, sql = make_course(100, slug="python"), make_course(100, slug="sql")
        store(
            # Alipay: 3 of 4 paid; WeChat: 1 of 2 (an order that switched to Alipay counts on both).
            [Sale(status="paid", attempts=[paid_attempt(opened)], course_ids=[python]) for _ in range(2)]
            + [Sale(status="paid", attempts=[Attempt("wechat", "closed", opened), paid_attempt(opened)],
                    course_ids=[python, sql])]
            + [Sale(status="closed", attempts=[Attempt("alipay", "closed", opened)], course_ids=[sql])]
            + [Sale(status="paid", attempts=[paid_attempt(opened, channel="wechat")], course_ids=[sql])]
        )
        by_channel = success_by_channel(ONE_DAY)
        by_course = {title: rate for _id, title, rate in success_by_course(ONE_DAY)}
        alipay_days = success_by_day(ONE_DAY, "alipay")
    assert by_channel == {"alipay": SuccessRate(4, 3), "wechat": SuccessRate(2, 1)}
    assert alipay_days == {"2026-11-20": SuccessRate(4, 3)}
    assert by_course == {"Course python": SuccessRate(3, 3), "Course sql": SuccessRate(3, 2)}


# --- the fund-flow time --------------------------------------------------------------

def test_the_worked_example_one_hour_at_the_channel_and_half_an_hour_ours_is_one_and_a_half_hours(
        app: Flask) -> None:
    opened = DAY_START + timedelta(hours=5)
    assert fund_flow(opened, None, opened + timedelta(hours=1), opened + timedelta(hours=1.5)) == FundFlow(3600, 1800)
    assert FundFlow(3600, 1800).total_seconds == 5400
    assert duration_text(5400) == "1h 30m 00s"
    with app.app_context():
        store([Sale(status="paid", attempts=[paid_attempt(opened, channel_seconds=3600, system_seconds=1800)])])
        [row] = fund_flow_summary(ONE_DAY)
        [slow] = slowest_payments(ONE_DAY)
    assert (row.day, row.channel) == ("2026-11-20", "alipay")
    assert row.channel_time == DurationSummary(1, 3600, 3600)
    assert row.system_time == DurationSummary(1, 1800, 1800)
    assert row.total_time == DurationSummary(1, 5400, 5400)
    assert (slow.channel_seconds, slow.system_seconds, slow.total_seconds) == (3600, 1800, 5400)


def test_without_a_channel_opening_time_the_qr_shown_time_stands_in() -> None:
    shown = datetime(2026, 11, 20, 1, 0)
    assert fund_flow(None, shown, shown + timedelta(minutes=2), shown + timedelta(minutes=2, seconds=3)) == \
        FundFlow(120, 3)
    assert fund_flow(None, None, shown, shown) is None


@pytest.mark.parametrize(("values", "median", "p95"), [
    ([7], 7, 7),
    ([5, 1, 3], 3, 5),  # ranks ceil(1.5) = 2 and ceil(2.85) = 3
    ([40, 10, 30, 20], 20, 40),  # the lower middle value; ceil(3.8) = 4
    (list(range(1, 21)), 10, 19),  # ceil(10) = 10, ceil(19) = 19
    (list(range(1, 101)), 50, 95),
    (list(range(1, 102)), 51, 96),  # ceil(50.5) = 51, ceil(95.95) = 96
])
def test_percentiles_are_nearest_rank(values: list[int], median: int, p95: int) -> None:
    assert (percentile(values, 50), percentile(values, 95)) == (median, p95)
    assert summarize(values) == DurationSummary(len(values), median, p95)


def test_nearest_rank_edges() -> None:
    assert [nearest_rank(95, n) for n in (1, 19, 20, 21)] == [1, 19, 19, 20]
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        nearest_rank(50, 0)


def test_sql_medians_and_p95_match_python_per_day_and_channel(app: Flask) -> None:
    """Known durations on two days and two channels: the database's ranking agrees with
    the pure functions, for the channel, system and total times."""
    groups = {
        ("2026-11-20", "alipay"): [(30 * k % 97 + 5, k % 7) for k in range(1, 38)],
        ("2026-11-20", "wechat"): [(600 + 13 * k, 2 * k) for k in range(12)],
        ("2026-11-21", "alipay"): [(3600, 1800), (60, 1), (120, 4)],
    }
    sales = []
    for (day, channel), durations in groups.items():
        opened = DAY_START + timedelta(days=int(day[-2:]) - 20, hours=1)
        sales += [Sale(created_at=opened, status="paid",
                       attempts=[paid_attempt(opened, channel, channel_s, system_s, reported_opening=channel == "alipay")])
                  for channel_s, system_s in durations]
    with app.app_context():
        store(sales)
        rows = {(row.day, row.channel): row for row in fund_flow_summary(DayRange(DAY, DAY + timedelta(days=1)))}
        by_channel = {row.channel: row for row in fund_flow_summary(DayRange(DAY, DAY + timedelta(days=1)),
                                                                    by_day=False)}
    assert set(rows) == set(groups)
    for key, durations in groups.items():
        assert rows[key].channel_time == summarize([c for c, _ in durations])
        assert rows[key].system_time == summarize([s for _, s in durations])
        assert rows[key].total_time == summarize([c + s for c, s in durations])
    alipay = groups[("2026-11-20", "alipay")] + groups[("2026-11-21", "alipay")]
    assert by_channel["alipay"].total_time == summarize([c + s for c, s in alipay])


def test_the_slowest_payments_come_first_with_their_timeline(app: Flask) -> None:
    opened = DAY_START + timedelta(hours=2)
    with app.app_context():
        store([Sale(status="paid", attempts=[paid_attempt(opened, channel_seconds=10 * k, system_seconds=1)])
               for k in range(1, 15)])
        slowest = slowest_payments(ONE_DAY)
    assert [payment.total_seconds for payment in slowest] == [10 * k + 1 for k in range(14, 4, -1)]
    assert slowest[0].channel_opened_at == opened and slowest[0].booked_at == opened + timedelta(seconds=141)


# --- the funnel ----------------------------------------------------------------------

def test_the_funnel_counts_orders_at_each_step_with_drop_off(app: Flask) -> None:
    shown = DAY_START + timedelta(hours=4)
    sales = (
        [Sale() for _ in range(2)]  # created, never shown a QR (say the precreate failed)
        + [Sale(status="closed", attempts=[Attempt(qr_issued_at=shown, status="closed")]) for _ in range(3)]
        + [Sale(status="closed", attempts=[Attempt(qr_issued_at=shown, channel_opened_at=shown, status="closed")])]
        + [Sale(status="paid", attempts=[paid_attempt(shown)]) for _ in range(3)]
        + [Sale(status="refunded", attempts=[paid_attempt(shown, channel="wechat", reported_opening=False)])]
    )
    with app.app_context():
        store(sales)
        steps = funnel_counts(ONE_DAY)
    assert [(step.step, step.orders) for step in steps] == [
        ("created", 10), ("qr_shown", 8), ("qr_opened", 5), ("paid", 4), ("refunded", 1)]
    assert [step.drop_off_basis_points for step in steps] == [None, 2000, 3750, 2000, 7500]


def test_orders_the_balance_paid_whole_are_not_in_the_funnel(app: Flask) -> None:
    shown = DAY_START + timedelta(hours=4)
    with app.app_context():
        store([Sale(status="paid"), Sale(status="paid"), Sale(status="paid", attempts=[paid_attempt(shown)])])
        whole, part = db.session.scalars(select(Order.id).order_by(Order.id).limit(2)).all()
        db.session.execute(update(Order).where(Order.id == whole).values(wallet_paid_fen=80, wallet_bonus_fen=20))
        db.session.execute(update(Order).where(Order.id == part).values(wallet_paid_fen=99))  # 1 fen for a channel
        db.session.commit()
        steps = funnel_counts(ONE_DAY)
    # The part-paid order still needed a channel and never got a QR; the balance-only one is out.
    assert [(step.step, step.orders) for step in steps] == [
        ("created", 2), ("qr_shown", 1), ("qr_opened", 1), ("paid", 1), ("refunded", 0)]


def test_the_funnel_of_no_orders_has_no_drop_off() -> None:
    assert [step.drop_off_basis_points for step in funnel([0, 0, 0, 0, 0])] == [None] * 5


# --- the page ------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["success_rate", "fund_flow_median", "fund_flow_p95", "fund_flow_split", "funnel"])
def test_each_chart_csv_holds_the_numbers_the_chart_draws(app: Flask, key: str) -> None:
    opened = DAY_START + timedelta(hours=3)
    with app.app_context():
        store([Sale(status="paid", attempts=[paid_attempt(opened, "wechat", 90, 3)]),
               Sale(status="closed", attempts=[Attempt(qr_issued_at=opened, status="closed")])])
        drawn = chart(key, DayRange(DAY - timedelta(days=1), DAY))
        rows = list(csv.reader(io.StringIO(chart_csv(drawn))))
    assert rows[0] == [drawn.x_name, *(f"{series.name} ({drawn.unit})" for series in drawn.series)]
    for index, row in enumerate(rows[1:]):
        assert row[0] == drawn.x_labels[index]
        assert row[1:] == ["" if series.values[index] is None else str(series.values[index])
                           for series in drawn.series]
    svg = drawn.svg()
    assert svg.startswith("<svg") and "<script" not in svg and "style=" not in svg
    ElementTree.fromstring(svg)  # well-formed: a browser shows nothing of inline SVG that is not
    numbers = [value for series in drawn.series for value in series.values if value is not None]
    assert numbers, "the chart has something to draw"


def test_the_success_rate_chart_of_a_day(app: Flask) -> None:
    opened = DAY_START + timedelta(hours=3)
    with app.app_context():
        store([Sale(status="paid", attempts=[paid_attempt(opened)]) for _ in range(3)]
              + [Sale(status="closed", attempts=[Attempt("wechat", "closed", opened)])])
        drawn = chart("success_rate", ONE_DAY)
    assert [(series.name, series.values) for series in drawn.series] == [
        ("All channels", (7500,)), ("Alipay", (10000,)), ("WeChat Pay", (0,))]


@pytest.mark.parametrize(("visitor", "status"), [
    ("admin", 200), ("finance", 200), ("support", 403), ("learner", 403), ("instructor", 403)])
def test_the_page_is_for_finance_and_admins(app: Flask, client_as: Callable[[str], FlaskClient], learner: int,
                                            visitor: str, status: int) -> None:
    client = client_as(visitor)
    assert client.get("/admin/analytics/").status_code == status
    assert client.get("/admin/analytics/csv/funnel").status_code == status


def test_the_anonymous_are_sent_to_log_in(app: Flask) -> None:
    response = app.test_client().get("/admin/analytics/csv/success_rate")
    assert response.status_code == 302 and "/login?next=" in response.headers["Location"]


def test_the_page_shows_charts_tables_and_csv_links(app: Flask, client_as: Callable[[str], FlaskClient]) -> None:
    opened = DAY_START + timedelta(hours=3)
    with app.app_context():
        store([Sale(status="paid", attempts=[paid_attempt(opened, channel_seconds=3600, system_seconds=1800)])])
    page = client_as("finance").get("/admin/analytics/?first=2026-11-19&last=2026-11-20")
    assert page.status_code == 200
    for key in ("success_rate", "fund_flow_median", "fund_flow_p95", "fund_flow_split", "funnel"):
        assert f'id="chart-{key}"' in page.text and f'id="csv-{key}"' in page.text
    assert "1h 30m 00s" in page.text and "100.00 %" in page.text
    download = client_as("finance").get("/admin/analytics/csv/success_rate?first=2026-11-19&last=2026-11-20")
    assert download.headers["Content-Type"].startswith("text/csv")
    assert download.text.splitlines()[1:] == ["2026-11-19,,,", "2026-11-20,10000,10000,"]


def test_a_bad_range_is_explained_not_an_error(client_as: Callable[[str], FlaskClient]) -> None:
    page = client_as("admin").get("/admin/analytics/?first=yesterday&last=2026-11-20")
    assert page.status_code == 200 and "is not a day" in page.text
    assert client_as("admin").get("/admin/analytics/csv/nothing").status_code == 404
    wide = client_as("admin").get("/admin/analytics/?first=2020-01-01&last=2026-11-20")
    assert "At most 92 days" in wide.text
    # Year 1 or 9999 would overflow the range's arithmetic: refused with a word, not a 500.
    for query in ("first=0001-01-01", "last=0001-01-10", "last=9999-12-31"):
        for path in ("/admin/analytics/", "/admin/analytics/money", "/admin/analytics/csv/funnel"):
            answer = client_as("admin").get(f"{path}?{query}")
            assert answer.status_code == 200, (path, query)
    assert "is outside 2000-01-01" in client_as("admin").get("/admin/analytics/?first=0001-01-01").text


# --- the timeline a real payment records ---------------------------------------------

@pytest.mark.parametrize("channel", ["alipay", "wechat"])
def test_an_emulator_payment_records_its_timeline(app: Flask, client: FlaskClient, clock, channel: str) -> None:
    with app.app_context():
        course_id = make_course(10000)
        make_learner()
    login(client)
    order_no = checkout(client, [course_id], channel=channel)
    client.get(f"/orders/{order_no}/pay")
    shown = clock()
    clock.advance(minutes=2)
    with app.app_context():
        qr_url = attempt_of(order_no).qr_code
    pay_at_emulator(app, qr_url)
    with app.app_context():
        attempt = attempt_of(order_no)
        assert attempt.status == "succeeded"
        assert attempt.qr_issued_at == shown
        assert attempt.booked_at == clock()
        assert attempt.succeeded_at is not None and attempt.succeeded_at <= attempt.booked_at
        if channel == "alipay":
            # gmt_create: the scan, in whole seconds of Beijing time.
            assert attempt.channel_opened_at == clock().replace(microsecond=0)
        else:
            assert attempt.channel_opened_at is None  # WeChat Pay Native reports no scan
        [row] = fund_flow_summary(DayRange(DAY, DAY))
    assert row.channel == channel and row.total_time.count == 1
    expected_channel = 120 if channel == "wechat" else 0  # the QR shown stands in for WeChat
    assert row.channel_time.median_seconds == expected_channel
