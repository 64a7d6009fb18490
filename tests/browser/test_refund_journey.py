"""Journey 3: a learner who bought two courses asks for a refund; a support user logs in
with the second factor and approves it in the back office; the refund runs on the RQ
worker at the channel, and the learner sees the order refunded and the course closed."""
from __future__ import annotations

import time

from playwright.sync_api import Page, expect

from tests.browser.browsing import Journey, STEP_TIMEOUT_MS
from tests.browser.steps import Purchase, buy_two_courses, log_in_staff, pay_with_phone, study

SUPPORT_EMAIL = "support-browser@example.com"
SUPPORT_PASSWORD = "support-browser-password"
REFUNDED_WITHIN_SECONDS = 20.0


def ask_for_a_refund(journey: Journey, learner: Page, purchase: Purchase) -> None:
    learner.goto("/orders")
    order = learner.locator(f"tr.order[data-order-no='{purchase.order_no}']")
    expect(order.locator(".status-paid")).to_have_count(1)
    order.locator(f"a[href$='/orders/{purchase.order_no}/refund']").click()
    form = learner.locator("main form:has(textarea[name=reason])")
    form.locator("textarea[name=reason]").fill("课程内容与预期不符 Not what I expected")
    journey.shot(learner, "refund-request")
    form.locator("button[type=submit]").click()
    learner.wait_for_url("**/orders")
    expect(order.locator(".refund-requested")).to_have_count(1)
    journey.shot(learner, "refund-requested")


def approve_in_the_back_office(journey: Journey, support: Page, purchase: Purchase) -> None:
    support.goto("/admin/refund/")
    row = support.locator("table tbody tr").filter(has=support.get_by_role("link", name=purchase.order_no, exact=True))
    expect(row).to_have_count(1)
    journey.shot(support, "admin-refunds")
    row.locator("a[href*='/admin/refund/details/']").click()
    expect(support.locator("#refund-status")).to_have_attribute("data-status", "requested")
    approve = support.locator("form[action$='/approve']")
    approve.locator("textarea[name=reason]").fill("Within the refund window; one lesson opened")
    journey.shot(support, "admin-refund-detail")
    approve.locator("button[type=submit]").click()
    expect(support.locator("#decision")).to_contain_text("Within the refund window; one lesson opened")
    journey.shot(support, "admin-refund-approved")


def wait_until_refunded(journey: Journey, learner: Page, purchase: Purchase) -> None:
    """The learner reloads "my orders", as a person would, until the worker has refunded
    the order at the channel."""
    order = learner.locator(f"tr.order[data-order-no='{purchase.order_no}']")
    deadline = time.monotonic() + REFUNDED_WITHIN_SECONDS
    learner.goto("/orders")
    while order.locator(".status-refunded").count() == 0:
        assert time.monotonic() < deadline, f"order {purchase.order_no} not refunded within {REFUNDED_WITHIN_SECONDS} s"
        learner.wait_for_timeout(500)
        learner.reload()
    expect(order.locator(".refund-succeeded")).to_have_count(1)
    journey.shot(learner, "refunded")


def test_a_refund_approved_by_support_in_the_back_office_reaches_the_learner(journey: Journey) -> None:
    journey.site.flask("users", "create", "--email", SUPPORT_EMAIL, "--role", "support",
                       "--name", "Sam Support", "--password", SUPPORT_PASSWORD)
    learner = journey.desktop("learner")
    purchase = buy_two_courses(journey, learner, channel="wechat")
    pay_with_phone(journey, learner, purchase, channel="wechat")
    study(journey, learner, purchase)
    ask_for_a_refund(journey, learner, purchase)

    support = journey.desktop("support", locale="en-US")
    log_in_staff(journey, support, SUPPORT_EMAIL, SUPPORT_PASSWORD)
    approve_in_the_back_office(journey, support, purchase)

    wait_until_refunded(journey, learner, purchase)
    # The course is closed again: its lesson sends the learner back to the course page.
    studied = purchase.courses[0]
    learner.goto(f"/courses/{studied.slug}/lessons/1")
    learner.wait_for_url(journey.site.url(f"/courses/{studied.slug}"), timeout=STEP_TIMEOUT_MS)
    learner.goto("/my/courses")
    expect(learner.locator("li.my-course")).to_have_count(0)
    journey.shot(learner, "my-courses-after-refund")
    support.reload()
    expect(support.locator("#refund-status")).to_have_attribute("data-status", "succeeded")
    journey.shot(support, "admin-refund-succeeded")
