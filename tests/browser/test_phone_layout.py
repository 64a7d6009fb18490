"""Every learner page fits a phone 375 px wide, in Chinese and in English: nothing makes
the page scroll sideways, and no element sticks out past the right edge (content that
scrolls inside a box of its own, a wide table in its wrapper, is fine). The pay page's
QR code is large enough for another phone to scan, and a learner already on the phone
has a link that opens the channel's app.

One learner on one live site: in Chinese the learner registers on the phone, buys two
courses with a coupon and pays with Alipay (an order to refund, courses to study), leaves
a WeChat Pay order unpaid and a coupon in the cart; then every page is seen again in
English, logged in afresh.
"""
from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.browsing import PHONE, Journey
from tests.browser.steps import (
    LEARNER_PASSWORD,
    add_two_courses,
    apply_coupon_and_check_out,
    check_out,
    confirm_on_phone,
    log_in,
    read_qr_code,
    register_learner,
    remember_document,
    scan_with_phone,
    watch_flip_to_paid,
)

PHONE_WIDTH = PHONE["viewport"]["width"]
# A QR code another phone's camera reads from a hand's length away (the site draws 260 px).
MIN_QR_CSS_PX = 200
PENDING_SLUG = "mlops"
CART_SLUG, CART_COUPON = "flask-web", "SAVE20"  # SAVE20 needs ¥100; the course is ¥199
UNOWNED_SLUG = "distributed-systems"
NOT_FOUND, UNKNOWN_QR = "/no-such-page", "/gateway/alipay/qr/no-such-code"

# What sticks out past the right edge, named tag#id.class; an element inside a box that
# scrolls or clips sideways (the .table-scroll wrapper) does not move the page.
SIDEWAYS = """
(limit) => {
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    Array.from(el.classList, (c) => '.' + c).join('');
  const clipped = (el) => {
    for (let box = el.parentElement; box && box !== document.body; box = box.parentElement) {
      if (getComputedStyle(box).overflowX !== 'visible') { return true; }
    }
    return false;
  };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const rect = el.getBoundingClientRect();
    if (rect.width === 0 || rect.right <= limit + 1 || clipped(el)) { continue; }
    out.push(name(el) + ' (right ' + Math.round(rect.right) + ')');
  }
  return {scrollWidth: document.documentElement.scrollWidth, out: out};
}
"""


def sideways(page: Page) -> list[str]:
    """What makes the page wider than the phone; empty when it fits."""
    found = page.evaluate(SIDEWAYS, PHONE_WIDTH)
    problems = list(found["out"])
    if found["scrollWidth"] > PHONE_WIDTH:
        problems.insert(0, f"document {found['scrollWidth']} px wide")
    return problems


class Sweep:
    """The pages seen so far and what stuck out of each."""

    def __init__(self, journey: Journey) -> None:
        self.journey = journey
        self.seen: list[str] = []
        self.overflows: list[str] = []

    def check(self, page: Page, step: str) -> None:
        problems = sideways(page)
        self.seen.append(f"{step} {page.url}")
        if problems:
            self.journey.shot(page, f"overflow-{step}")
            self.overflows.append(f"{step} ({page.url}): " + "; ".join(problems[:8]))

    def visit(self, page: Page, path: str, step: str, status: int = 200) -> None:
        response = page.goto(path)
        assert response is not None and response.status == status, (path, response and response.status)
        if status == 404:
            # Chromium logs the page's own 404 as a console error; here it is the page asked for.
            refused = f"{page.url}: Failed to load resource: the server responded with a status of 404"
            self.journey.problems[:] = [problem for problem in self.journey.problems if refused not in problem]
        self.check(page, step)


def check_the_pay_page_on_a_phone(page: Page) -> None:
    qr_width = page.locator("#qr svg").evaluate("(svg) => svg.getBoundingClientRect().width")
    assert qr_width >= MIN_QR_CSS_PX, f"the QR code is {qr_width} px wide on a {PHONE_WIDTH} px phone"
    # A learner paying on this very phone cannot scan its own screen: the link opens the app.
    open_in_app = page.locator("a#qr-url")
    expect(open_in_app).to_be_visible()
    assert "/gateway/" in (open_in_app.get_attribute("href") or ""), "the link must open the channel's page"


def add_to_cart(page: Page, slug: str) -> None:
    page.goto(f"/courses/{slug}")
    page.locator("main form[action*='/cart/add/'] button[type=submit]").click()
    page.wait_for_url("**/cart/")


def learner_pages(paid: str, pending: str, bought_slug: str) -> list[tuple[str, str]]:
    return [
        ("catalog", "/"),
        ("course-owned", f"/courses/{bought_slug}"),
        ("course", f"/courses/{UNOWNED_SLUG}"),
        ("lesson", f"/courses/{bought_slug}/lessons/1"),
        ("my-courses", "/my/courses"),
        ("cart-with-coupon", "/cart/"),
        ("my-orders", "/orders"),
        ("pay-pending", f"/orders/{pending}/pay"),
        ("pay-paid", f"/orders/{paid}/pay"),
        ("refund", f"/orders/{paid}/refund"),
        ("account", "/account"),
    ]


def test_every_learner_page_fits_a_phone_in_chinese_and_in_english(journey: Journey) -> None:
    sweep = Sweep(journey)
    phone = journey.phone("learner", locale="zh-CN")
    for step, path in (("catalog", "/"), ("course", f"/courses/{UNOWNED_SLUG}"), ("login", "/login"),
                       ("register", "/register")):
        sweep.visit(phone, path, f"zh-{step}-anonymous")
    sweep.visit(phone, NOT_FOUND, "zh-not-found-anonymous", status=404)

    # A paid order: bought and paid on the phone, the QR code read from its screenshot.
    email = register_learner(journey, phone)
    purchase = apply_coupon_and_check_out(journey, phone, add_two_courses(journey, phone), "alipay")
    sweep.check(phone, "zh-pay")
    check_the_pay_page_on_a_phone(phone)
    alipay_url = read_qr_code(journey, phone, purchase, "alipay")
    remember_document(phone)
    payer = journey.phone("payer", locale="zh-CN")
    scan_with_phone(journey, payer, alipay_url, purchase, "alipay")
    sweep.check(payer, "zh-alipay-qr")
    confirm_on_phone(journey, payer, "alipay")
    sweep.check(payer, "zh-alipay-paid")
    watch_flip_to_paid(journey, phone)
    sweep.check(phone, "zh-pay-flipped-to-paid")

    # A pending order at WeChat Pay, and a cart with a coupon left in it.
    add_to_cart(phone, PENDING_SLUG)
    pending = check_out(phone, "wechat")
    check_the_pay_page_on_a_phone(phone)
    wechat_url = phone.locator("#qr-url").get_attribute("href")
    add_to_cart(phone, CART_SLUG)
    coupon = phone.locator("form[action$='/cart/coupon']")
    coupon.locator("input[name=code]").fill(CART_COUPON)
    coupon.locator("button[type=submit]").click()
    expect(phone.locator("form[action$='/cart/coupon/remove']")).to_have_count(1)

    emulator_pages = [("wechat-qr", wechat_url), ("alipay-qr-paid", alipay_url)]
    pages = learner_pages(purchase.order_no, pending, purchase.courses[1].slug)
    for step, path in pages:
        sweep.visit(phone, path, f"zh-{step}")
    sweep.visit(phone, NOT_FOUND, "zh-not-found", status=404)
    for step, url in emulator_pages:
        sweep.visit(payer, url, f"zh-{step}")
    sweep.visit(payer, UNKNOWN_QR, "zh-unknown-qr", status=404)

    # The same learner in English, on a phone that never saw the site.
    english = journey.phone("learner-en", locale="en-US")
    for step in ("register", "login"):
        sweep.visit(english, f"/{step}", f"en-{step}-anonymous")
    log_in(journey, english, email, LEARNER_PASSWORD)
    expect(english.locator("html")).to_have_attribute("lang", re.compile("^en"))
    for step, path in pages:
        sweep.visit(english, path, f"en-{step}")
    sweep.visit(english, NOT_FOUND, "en-not-found", status=404)
    english_payer = journey.phone("payer-en", locale="en-US")
    for step, url in emulator_pages:
        sweep.visit(english_payer, url, f"en-{step}")
    sweep.visit(english_payer, UNKNOWN_QR, "en-unknown-qr", status=404)

    assert len(sweep.seen) >= 2 * (len(pages) + len(emulator_pages) + 2)
    assert sweep.overflows == [], "pages wider than a phone:\n" + "\n".join(sweep.overflows)
