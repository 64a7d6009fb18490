"""Steps the journeys share: a learner registers, browses, fills the cart, applies a
coupon and checks out; the pay page's QR code is read from its screenshot and paid on a
phone while the desktop page flips to "paid" by itself; people log in, staff with their
second factor.

Selectors name ids, ``data-*`` attributes, form actions, field names, hrefs and the
classes the pages' styles hang on, never text a reader sees (browsing.py says why).
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pyotp
from playwright.sync_api import Locator, Page, expect

from tests.browser.browsing import Journey, decode_qr, fen_shown
from tests.e2e.test_live_purchase import BOUGHT_SLUGS, COUPON, expected_amounts

LEARNER_PASSWORD = "correct-horse-battery"
# The pay page polls with a backoff from one second up to ten (static/js/pay-status.js):
# the flip comes within a few polls of the payment.
PAID_WITHIN_MS = 20_000
_PAY_PATH = re.compile(r"/orders/([A-Za-z0-9]+)/pay$")


@dataclass(frozen=True)
class ShownCourse:
    """A course as the catalog showed it to the learner."""

    slug: str
    title: str
    price_fen: int


@dataclass(frozen=True)
class Purchase:
    order_no: str
    total_fen: int
    courses: tuple[ShownCourse, ...]


# --- a learner buys ----------------------------------------------------------------------


def register_learner(journey: Journey, page: Page) -> str:
    """A new account through the register page; the learner is then logged in."""
    page.goto("/register")
    form = page.locator("main form:has(input[name=confirm])")
    email = f"learner-{uuid.uuid4().hex[:10]}@example.com"
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=display_name]").fill("学员 Browser")
    form.locator("input[name=password]").fill(LEARNER_PASSWORD)
    form.locator("input[name=confirm]").fill(LEARNER_PASSWORD)
    journey.shot(page, "register")
    form.locator("button[type=submit]").click()
    page.wait_for_url(journey.site.url("/"))  # the catalog
    expect(page.locator("header form[action$='/logout']")).to_have_count(1)
    return email


def _card(page: Page, slug: str) -> Locator:
    return page.locator("li.card").filter(has=page.locator(f"a[href$='/courses/{slug}']"))


def add_two_courses(journey: Journey, page: Page, slugs: tuple[str, str] = BOUGHT_SLUGS) -> tuple[ShownCourse, ...]:
    """Browse the catalog (where registering lands); add the first course from its own
    page, the second straight from the catalog. Returns the courses with the titles and
    prices the catalog showed."""
    courses = tuple(
        ShownCourse(slug, _card(page, slug).locator("h2").inner_text().strip(),
                    fen_shown(_card(page, slug).locator(".price").inner_text()))
        for slug in slugs
    )
    journey.shot(page, "catalog")

    _card(page, slugs[0]).locator("h2 a").click()
    page.wait_for_url(f"**/courses/{slugs[0]}")
    journey.shot(page, "course")
    page.locator("main form[action*='/cart/add/'] button[type=submit]").click()
    page.wait_for_url("**/cart/")

    page.locator("header a.brand").click()
    page.wait_for_url(journey.site.url("/"))
    _card(page, slugs[1]).locator("form[action*='/cart/add/'] button[type=submit]").click()
    page.wait_for_url("**/cart/")
    expect(page.locator("table.cart tbody tr")).to_have_count(2)
    for course in courses:
        expect(page.locator("table.cart tbody")).to_contain_text(course.title)
    return courses


def apply_coupon_and_check_out(
    journey: Journey, page: Page, courses: tuple[ShownCourse, ...], channel: str
) -> Purchase:
    """Apply WELCOME10, check the cart's sums against an independent computation from
    the catalog's prices, choose the channel and check out: lands on the pay page."""
    coupon = page.locator("form[action$='/cart/coupon']")
    coupon.locator("input[name=code]").fill(COUPON)
    coupon.locator("button[type=submit]").click()
    expect(page.locator("form[action$='/cart/coupon/remove']")).to_have_count(1)  # applied

    expected = expected_amounts([course.price_fen for course in courses])
    shown = {name: fen_shown(page.locator(f"#{name}").inner_text()) for name in ("subtotal", "discount", "tax", "total")}
    assert shown == {"subtotal": expected.subtotal_fen, "discount": expected.discount_fen,
                     "tax": expected.tax_fen, "total": expected.total_fen}
    journey.shot(page, "cart-with-coupon")

    return Purchase(check_out(page, channel), expected.total_fen, courses)


def check_out(page: Page, channel: str) -> str:
    """Check the cart out with ``channel``; the new order's number, from the pay page's URL."""
    checkout = page.locator("form[action$='/cart/checkout']")
    checkout.locator(f"input[name=channel][value={channel}]").check()
    checkout.locator("button[type=submit]").click()
    page.wait_for_url(_PAY_PATH)
    match = _PAY_PATH.search(page.url)
    assert match, page.url
    return match.group(1)


def buy_two_courses(journey: Journey, page: Page, channel: str) -> Purchase:
    register_learner(journey, page)
    courses = add_two_courses(journey, page)
    return apply_coupon_and_check_out(journey, page, courses, channel)


# --- paying with a phone -------------------------------------------------------------------


def read_qr_code(journey: Journey, page: Page, purchase: Purchase, channel: str) -> str:
    """Screenshot the pay page and read its QR code with zbar: the URL a phone would open.
    It must be the page's own link, at the channel's QR pages on the site's public URL."""
    expect(page.locator("#pay")).to_have_attribute("data-status", "pending")
    expect(page.locator("#channel")).to_have_attribute("data-channel", channel)
    expect(page.locator("#qr svg")).to_be_visible()
    assert fen_shown(page.locator("#pay .amount").inner_text()) == purchase.total_fen
    qr_url = decode_qr(journey.shot(page, f"pay-page-{channel}"))
    assert qr_url == page.locator("#qr-url").get_attribute("href")
    assert qr_url.startswith(journey.site.url(f"/gateway/{channel}/qr/")), qr_url
    return qr_url


def scan_with_phone(journey: Journey, phone: Page, qr_url: str, purchase: Purchase, channel: str) -> None:
    """The payer's app opens the QR code's URL: the channel's page asks for the amount."""
    phone.goto(qr_url)
    assert fen_shown(phone.locator("#pay-amount").inner_text()) == purchase.total_fen
    expect(phone.locator("form[action$='/confirm'] button[type=submit]")).to_be_visible()
    journey.shot(phone, f"phone-{channel}-scanned")


def confirm_on_phone(journey: Journey, phone: Page, channel: str) -> None:
    phone.locator("form[action$='/confirm'] button[type=submit]").tap()
    expect(phone.locator(".pay-state-success")).to_be_visible()
    journey.shot(phone, f"phone-{channel}-paid")


def remember_document(page: Page) -> None:
    """Mark the page's document, so a later check can tell it was never reloaded."""
    page.evaluate("() => { window.journeyDocument = 'before-payment'; }")


def watch_flip_to_paid(journey: Journey, page: Page) -> None:
    """The pay page shows "paid" by itself: its own poller, no reload, no click."""
    expect(page.locator("#state-paid")).to_be_visible(timeout=PAID_WITHIN_MS)
    expect(page.locator("#pay")).to_have_attribute("data-status", "paid")
    expect(page.locator("#state-pending")).to_be_hidden()
    assert page.evaluate("() => window.journeyDocument") == "before-payment", "the pay page was reloaded"
    journey.shot(page, "paid")


def pay_with_phone(journey: Journey, page: Page, purchase: Purchase, channel: str) -> None:
    qr_url = read_qr_code(journey, page, purchase, channel)
    remember_document(page)
    phone = journey.phone()
    scan_with_phone(journey, phone, qr_url, purchase, channel)
    confirm_on_phone(journey, phone, channel)
    watch_flip_to_paid(journey, page)


def study(journey: Journey, page: Page, purchase: Purchase) -> None:
    """From the paid page to my courses (both bought), and into the first lesson."""
    page.locator("#state-paid a[href$='/my/courses']").click()
    page.wait_for_url("**/my/courses")
    expect(page.locator("li.my-course")).to_have_count(len(purchase.courses))
    journey.shot(page, "my-courses")
    first = purchase.courses[0]
    page.locator(f"li.my-course a[href$='/courses/{first.slug}/lessons/1']").click()
    page.wait_for_url(f"**/courses/{first.slug}/lessons/1")
    expect(page.locator(".lesson-body")).to_be_visible()
    journey.shot(page, "lesson")


# --- logging in ----------------------------------------------------------------------------


def log_in(journey: Journey, page: Page, email: str, password: str) -> None:
    page.goto("/login")
    form = page.locator("main form:has(input[name=password])")
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=password]").fill(password)
    journey.shot(page, "login")
    form.locator("button[type=submit]").click()
    expect(page.locator("header form[action$='/logout']")).to_have_count(1)


def log_in_staff(journey: Journey, page: Page, email: str, password: str) -> None:
    """The password, then the second factor set up at the first login: the secret the
    set-up page shows goes into an authenticator (pyotp), whose code confirms it. The
    screenshots cover the secret, its QR code and the recovery codes."""
    log_in(journey, page, email, password)
    page.wait_for_url("**/second-factor/setup**")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    journey.shot(page, "second-factor-setup", mask=[page.locator("#totp-qr"), page.locator("#totp-secret")])
    form = page.locator("main form:has(input[name=code])")
    form.locator("input[name=code]").fill(pyotp.TOTP(secret).now())
    form.locator("button[type=submit]").click()
    expect(page.locator("#recovery-codes")).to_be_visible()
    journey.shot(page, "recovery-codes", mask=[page.locator("#recovery-codes")])
    page.locator("#continue").click()
    page.wait_for_url("**/admin/**")
