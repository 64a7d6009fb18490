"""Journey 5: a learner buys two courses, pays, and gets the order refunded; finance then
reads it in the back office's payment analytics: the success rate and the funnel count
the order, the slowest payments show its timeline, the charts are drawn (under the
site's Content-Security-Policy) and their CSV downloads say the same; the money page
shows the sale and its refund, which leave the platform and the instructors nothing."""
from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

from playwright.sync_api import Page, expect

from app.timeutil import beijing
from tests.browser.browsing import Journey, fen_shown
from tests.browser.steps import buy_two_courses, log_in_staff, pay_with_phone
from tests.browser.test_refund_journey import (SUPPORT_EMAIL, SUPPORT_PASSWORD, approve_in_the_back_office,
                                               ask_for_a_refund, wait_until_refunded)
from tests.e2e.test_live_wechat import database_rows

FINANCE_EMAIL = "finance-browser@example.com"
FINANCE_PASSWORD = "finance-browser-password"


def download(journey: Journey, page: Page, link_id: str) -> list[list[str]]:
    """Click a chart's CSV link as a person would and read the file the browser saved."""
    with page.expect_download() as answer:
        page.locator(f"#{link_id}").click()
    path: Path = journey.keep(answer.value.suggested_filename)
    answer.value.save_as(path)
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def test_finance_reads_a_paid_and_refunded_order_in_the_payment_analytics(journey: Journey) -> None:
    site = journey.site
    site.flask("users", "create", "--email", SUPPORT_EMAIL, "--role", "support",
               "--name", "Sam Support", "--password", SUPPORT_PASSWORD)
    site.flask("users", "create", "--email", FINANCE_EMAIL, "--role", "finance",
               "--name", "Fay Finance", "--password", FINANCE_PASSWORD)
    learner = journey.desktop("learner")
    purchase = buy_two_courses(journey, learner, channel="wechat")
    pay_with_phone(journey, learner, purchase, channel="wechat")
    ask_for_a_refund(journey, learner, purchase)
    support = journey.desktop("support", locale="en-US")
    log_in_staff(journey, support, SUPPORT_EMAIL, SUPPORT_PASSWORD)
    approve_in_the_back_office(journey, support, purchase)
    wait_until_refunded(journey, learner, purchase)

    # The range runs from the order's Beijing day to today's, should the journey cross midnight.
    [(created_at,)] = database_rows(site, "SELECT created_at FROM orders WHERE order_no = :order_no",
                                    order_no=purchase.order_no)
    created = created_at if isinstance(created_at, datetime) else datetime.fromisoformat(str(created_at))
    first = beijing(created).date().isoformat()
    last = beijing(datetime.now(timezone.utc)).date().isoformat()

    finance = journey.desktop("finance", locale="en-US")
    log_in_staff(journey, finance, FINANCE_EMAIL, FINANCE_PASSWORD)
    finance.get_by_role("button", name="Money").click()
    finance.get_by_role("link", name="Payment analytics", exact=True).click()
    finance.wait_for_url("**/admin/analytics/")
    finance.locator("#range-first").fill(first)
    finance.locator("#range-last").fill(last)
    finance.locator("#range button[type=submit]").click()
    finance.wait_for_url(f"**/admin/analytics/?first={first}&last={last}")

    day = finance.locator("#daily-rates tr").filter(has=finance.locator(f"td:text-is('{first}')"))
    # The range's first day has no day before it in the range to change on.
    expect(day.locator("td")).to_have_text([first, "1", "1", "100.00 %", "—"])
    for step in ("created", "qr_shown", "qr_opened", "paid", "refunded"):
        expect(finance.locator(f"#funnel tr[data-step='{step}'] td").nth(1)).to_have_text("1")
    slow = finance.locator("#slowest tr").filter(has_text=purchase.order_no)
    expect(slow).to_have_count(1)
    expect(slow.locator("td").nth(1)).to_have_text("WeChat Pay")
    expect(finance.locator("#chart-success_rate")).to_be_visible()
    expect(finance.locator("#chart-funnel rect")).to_have_count(5)
    journey.shot(finance, "payment-analytics")

    rates = download(journey, finance, "csv-success_rate")
    assert rates[0] == ["day", "All channels (basis_points)", "Alipay (basis_points)", "WeChat Pay (basis_points)"]
    assert [first, "10000", "", "10000"] in rates[1:]
    funnel = download(journey, finance, "csv-funnel")
    assert funnel[1:] == [["Order created", "1"], ["QR shown", "1"], ["QR opened", "1"], ["Paid", "1"],
                          ["Refunded", "1"]]

    finance.locator("#money-link").click()
    finance.wait_for_url("**/admin/analytics/money**")
    totals = finance.locator("#money-days tfoot td")
    expect(totals).to_have_count(5)
    shown = [fen_shown(text) for text in totals.all_inner_texts()]
    # Sales, refunds, net sales, platform revenue, instructor earnings: all of it went back.
    assert shown == [purchase.total_fen, purchase.total_fen, 0, 0, 0]
    expect(finance.locator("#chart-money_daily polyline, #chart-money_daily circle").first).to_be_visible()
    journey.shot(finance, "money-per-day-and-month")
    money = download(journey, finance, "csv-money_daily")
    assert money[0] == ["day", "Sales (fen)", "Refunds (fen)", "Platform revenue (fen)", "Instructor earnings (fen)"]
    assert sum(int(row[1]) for row in money[1:]) == sum(int(row[2]) for row in money[1:]) == purchase.total_fen
    assert sum(int(row[3]) for row in money[1:]) == sum(int(row[4]) for row in money[1:]) == 0
