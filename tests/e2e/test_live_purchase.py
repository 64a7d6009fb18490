"""The whole purchase over HTTP against a live server, as a browser and a phone do it.

Register, fill the cart, apply WELCOME10, check out, read the QR's URL from the pay page,
open it on a second session (the phone) and confirm in the gateway emulator, then poll
the status endpoint until the emulator's notification has been processed and the order is
paid, and study the course. Once with jobs run inline by the web process, once with a
real RQ worker on Redis.
"""
from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import pytest
import redis
import requests
from rq.registry import FailedJobRegistry, FinishedJobRegistry

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveSite

TAX_RATE = Decimal("0.05")
COUPON = "WELCOME10"
COUPON_RATE = Decimal("0.10")
BOUGHT_SLUGS = ("ui-design", "python-basics")
POLL_SECONDS = 0.2
PAID_WITHIN_SECONDS = 20.0
TIMEOUT = 10


# --- reading pages ---------------------------------------------------------------------


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(Form(values.get("action", "")))
        elif tag == "input" and self.forms and values.get("name"):
            # As a browser does: an unticked checkbox or radio button sends nothing.
            if values.get("type") in ("checkbox", "radio") and "checked" not in values:
                return
            self.forms[-1].fields[values["name"]] = values.get("value", "")


def form_posting_to(page: requests.Response, action: str) -> Form:
    """The form on ``page`` whose action ends with ``action``, with its hidden inputs."""
    parser = _FormParser()
    parser.feed(page.text)
    matches = [
        form
        for form in parser.forms
        if urlsplit(urljoin(page.url, form.action)).path.endswith(action)
    ]
    assert len(matches) == 1, f"{len(matches)} forms post to {action} on {page.url}"
    assert matches[0].fields.get("csrf_token"), f"no csrf_token in the form for {action}"
    return matches[0]


def post_form(
    session: requests.Session, page: requests.Response, action: str, **values: str
) -> requests.Response:
    """Submit a form as the browser would: its hidden fields plus ``values``, no redirects."""
    form = form_posting_to(page, action)
    return session.post(
        urljoin(page.url, form.action), data={**form.fields, **values},
        allow_redirects=False, timeout=TIMEOUT,
    )


def element_text(page: requests.Response, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page.text, re.S)
    assert match, f"no #{element_id} on {page.url}"
    return html.unescape(match.group(1)).strip()


def attribute(page: requests.Response, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', page.text)
    assert match, f"no {name} on {page.url}"
    return html.unescape(match.group(1))


def qr_url_of(page: requests.Response) -> str:
    match = re.search(r'<a[^>]*id="qr-url"[^>]*href="([^"]+)"', page.text) or re.search(
        r'<a[^>]*href="([^"]+)"[^>]*id="qr-url"', page.text
    )
    assert match, f"no QR link on {page.url}"
    return html.unescape(match.group(1))


def yuan(amount_fen: int) -> str:
    return f"¥{amount_fen // 100}.{amount_fen % 100:02d}"


# --- the independent price check ---------------------------------------------------------


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class Expected:
    subtotal_fen: int
    discount_fen: int
    tax_fen: int
    total_fen: int


def expected_amounts(prices_fen: list[int]) -> Expected:
    """Per line: amount = half-up(price × 0.9 × 1.05); discount = price − half-up(price × 0.9);
    tax = amount − (price − discount)."""
    amounts = [half_up(Decimal(p) * (1 - COUPON_RATE) * (1 + TAX_RATE)) for p in prices_fen]
    discounts = [p - half_up(Decimal(p) * (1 - COUPON_RATE)) for p in prices_fen]
    taxes = [a - (p - d) for a, p, d in zip(amounts, prices_fen, discounts)]
    return Expected(sum(prices_fen), sum(discounts), sum(taxes), sum(amounts))


# --- the purchase --------------------------------------------------------------------------


@dataclass(frozen=True)
class Purchase:
    order_no: str
    total_fen: int
    courses: list[dict]


def buy_two_courses(site: LiveSite, browser: requests.Session, channel: str = "alipay") -> Purchase:
    register_page = browser.get(site.url("/register"), timeout=TIMEOUT)
    assert register_page.status_code == 200
    email = f"e2e-{time.monotonic_ns()}@example.com"
    registered = post_form(
        browser, register_page, "/register", email=email, display_name="E2E Learner",
        password="correct-horse-battery", confirm="correct-horse-battery",
    )
    assert registered.status_code == 302, registered.text

    catalog = browser.get(site.url("/api/v1/courses"), timeout=TIMEOUT).json()["courses"]
    by_slug = {course["slug"]: course for course in catalog}
    courses = [by_slug[slug] for slug in BOUGHT_SLUGS]
    prices = [course["price_fen"] for course in courses]
    assert all(isinstance(price, int) and price > 0 for price in prices)

    catalog_page = browser.get(site.url("/"), timeout=TIMEOUT)
    assert catalog_page.status_code == 200
    for course in courses:
        added = post_form(browser, catalog_page, f"/cart/add/{course['id']}")
        assert added.status_code == 302 and urlsplit(added.headers["Location"]).path == "/cart/"

    cart_page = browser.get(site.url("/cart/"), timeout=TIMEOUT)
    applied = post_form(browser, cart_page, "/cart/coupon", code=COUPON)
    assert applied.status_code == 302, applied.text
    cart_page = browser.get(site.url("/cart/"), timeout=TIMEOUT)
    assert "Coupon applied." in cart_page.text and COUPON in cart_page.text
    for course in courses:
        assert html.escape(course["title_en"]) in cart_page.text  # the English page: English titles

    expected = expected_amounts(prices)
    assert element_text(cart_page, "subtotal") == yuan(expected.subtotal_fen)
    assert element_text(cart_page, "discount") == "−" + yuan(expected.discount_fen)
    assert element_text(cart_page, "tax") == yuan(expected.tax_fen)
    assert element_text(cart_page, "total") == yuan(expected.total_fen)

    checked_out = post_form(browser, cart_page, "/cart/checkout", channel=channel)
    assert checked_out.status_code == 302, checked_out.text
    location = checked_out.headers["Location"]
    match = re.fullmatch(r"/orders/([A-Za-z0-9]+)/pay", urlsplit(location).path)
    assert match, location
    return Purchase(match.group(1), expected.total_fen, courses)


def pay_with_phone(
    site: LiveSite, browser: requests.Session, purchase: Purchase, channel: str = "alipay"
) -> None:
    pay_page = browser.get(site.url(f"/orders/{purchase.order_no}/pay"), timeout=TIMEOUT)
    assert pay_page.status_code == 200
    assert "<svg" in pay_page.text
    assert attribute(pay_page, "data-status-url") == f"/orders/{purchase.order_no}/status"
    assert attribute(pay_page, "data-status") == "pending"
    assert yuan(purchase.total_fen) in pay_page.text
    qr_url = qr_url_of(pay_page)
    assert qr_url.startswith(site.url(f"/gateway/{channel}/qr/")), qr_url
    assert browser.get(site.url(f"/orders/{purchase.order_no}/status"), timeout=TIMEOUT).json()[
        "status"
    ] == "pending"

    phone = requests.Session()
    with phone:
        scanned = phone.get(qr_url, timeout=TIMEOUT)
        assert scanned.status_code == 200, scanned.text
        assert yuan(purchase.total_fen) in scanned.text
        confirmed = post_form(phone, scanned, "/confirm")
        assert confirmed.status_code == 200, confirmed.text
        assert "Payment successful" in confirmed.text


def wait_until_paid(site: LiveSite, browser: requests.Session, order_no: str) -> dict:
    deadline = time.monotonic() + PAID_WITHIN_SECONDS
    while True:
        response = browser.get(site.url(f"/orders/{order_no}/status"), timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        status = response.json()
        if status["status"] == "paid":
            return status
        assert status["status"] == "pending", status
        assert time.monotonic() < deadline, f"still {status} after {PAID_WITHIN_SECONDS}s"
        time.sleep(POLL_SECONDS)


def assert_courses_are_mine(site: LiveSite, browser: requests.Session, purchase: Purchase) -> None:
    my_courses = browser.get(site.url("/my/courses"), timeout=TIMEOUT)
    assert my_courses.status_code == 200
    for course in purchase.courses:
        assert html.escape(course["title_en"]) in my_courses.text, course["slug"]
    orders = browser.get(site.url("/orders"), timeout=TIMEOUT)
    assert orders.status_code == 200 and purchase.order_no in orders.text
    lesson = browser.get(
        site.url(f"/courses/{purchase.courses[0]['slug']}/lessons/1"), allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert lesson.status_code == 200


def assert_processed_by_worker(site: LiveSite) -> None:
    """The notification job ran in the RQ worker: it sits in this run's payments queue's
    finished registry, and the worker logged it as done."""
    queue = f"{site.env['JOBS_QUEUE_PREFIX']}-payments"
    connection = redis.Redis.from_url(site.env["REDIS_URL"])
    try:
        # RQ records the job as finished just after the job's own commit: allow a moment.
        deadline = time.monotonic() + 5
        while not (finished := FinishedJobRegistry(queue, connection=connection).get_job_ids()):
            assert time.monotonic() < deadline, "no finished job in the RQ registry"
            time.sleep(POLL_SECONDS)
        assert FailedJobRegistry(queue, connection=connection).get_job_ids() == []
    finally:
        connection.close()
    prefix = site.env["JOBS_QUEUE_PREFIX"]
    assert len(finished) == 1 and finished[0].startswith(f"{prefix}-process_notification-")
    assert site.worker is not None
    log = site.worker.log()
    assert f"Job OK ({finished[0]})" in log, log


@pytest.mark.parametrize("live_site", ["inline", "rq"], indirect=True)
def test_a_learner_buys_two_courses_by_scanning_the_qr_code(live_site: LiveSite) -> None:
    with requests.Session() as browser:
        purchase = buy_two_courses(live_site, browser)
        pay_with_phone(live_site, browser, purchase)
        status = wait_until_paid(live_site, browser, purchase.order_no)
        assert status["order_no"] == purchase.order_no
        assert_courses_are_mine(live_site, browser, purchase)
    if live_site.worker is not None:
        assert_processed_by_worker(live_site)
