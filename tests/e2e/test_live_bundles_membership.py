"""Bundles and membership over HTTP against a live server, as a browser and a phone do it.

A learner buys the demo's Python full-stack bundle: the bundle page shows each course's
part of the price (checked here by an independent largest-remainder split), the cart
prices the parts with tax, the phone pays, and the three courses are the learner's;
the bundle is then refused, naming the course owned. Another learner, refused a lesson
before, buys the monthly membership and studies a course nobody sold them.
"""
from __future__ import annotations

import re
import time
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.test_live_purchase import (
    TIMEOUT, Purchase, element_text, form_posting_to, half_up, pay_with_phone, post_form, wait_until_paid,
    yuan,
)

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveSite

TAX_RATE = Decimal("0.05")
BUNDLE = "python-web-stack"
BUNDLE_PRICE_FEN = 39900  # app/catalog/demo_data.py
MONTHLY_FEN = 9900


def largest_remainder(total: int, weights: list[int]) -> list[int]:
    """The split the bundle page must show, computed apart from app.money: exact shares,
    floored, the spare fen to the largest fractions (ties to the earlier course)."""
    shares = [Fraction(total * weight, sum(weights)) for weight in weights]
    parts = [int(share) for share in shares]
    order = sorted(range(len(weights)), key=lambda index: (-(shares[index] - parts[index]), index))
    for index in order[: total - sum(parts)]:
        parts[index] += 1
    return parts


def register(site: LiveSite, browser: requests.Session) -> None:
    page = browser.get(site.url("/register"), timeout=TIMEOUT)
    password = "correct-horse-battery"
    registered = post_form(browser, page, "/register", email=f"e2e-{time.monotonic_ns()}@example.com",
                           display_name="E2E Learner", password=password, confirm=password)
    assert registered.status_code == 302, registered.text


def lesson(site: LiveSite, browser: requests.Session, slug: str) -> requests.Response:
    return browser.get(site.url(f"/courses/{slug}/lessons/1"), allow_redirects=False, timeout=TIMEOUT)


def test_a_learner_buys_a_bundle_and_cannot_buy_it_again(live_site: LiveSite) -> None:
    site = live_site
    with requests.Session() as browser:
        register(site, browser)
        catalog = {course["slug"]: course for course in
                   browser.get(site.url("/api/v1/courses"), timeout=TIMEOUT).json()["courses"]}
        page = browser.get(site.url(f"/bundles/{BUNDLE}"), timeout=TIMEOUT)
        assert page.status_code == 200
        slugs = re.findall(r'href="/courses/([a-z0-9-]+)"', page.text)
        courses = [catalog[slug] for slug in slugs]
        assert len(courses) == 3
        list_prices = [course["price_fen"] for course in courses]
        parts = largest_remainder(BUNDLE_PRICE_FEN, list_prices)
        assert element_text(page, "bundle-price") == yuan(BUNDLE_PRICE_FEN)
        assert element_text(page, "bundle-saving") == f"You save {yuan(sum(list_prices) - BUNDLE_PRICE_FEN)}"
        for course, part in zip(courses, parts):
            assert element_text(page, f"part-{course['id']}") == yuan(part)

        assert urlsplit(lesson(site, browser, slugs[0]).headers["Location"]).path == f"/courses/{slugs[0]}"

        added = post_form(browser, page, f"/bundles/{BUNDLE}/cart")
        assert added.status_code == 302 and urlsplit(added.headers["Location"]).path == "/cart/"
        cart = browser.get(site.url("/cart/"), timeout=TIMEOUT)
        amounts = [half_up(Decimal(part) * (1 + TAX_RATE)) for part in parts]
        assert element_text(cart, "subtotal") == yuan(BUNDLE_PRICE_FEN)
        assert element_text(cart, "total") == yuan(sum(amounts))
        checked_out = post_form(browser, cart, "/cart/checkout", channel="alipay")
        assert checked_out.status_code == 302, checked_out.text
        order_no = re.fullmatch(r"/orders/([A-Za-z0-9]+)/pay", urlsplit(checked_out.headers["Location"]).path)[1]

        purchase = Purchase(order_no, sum(amounts), courses)
        pay_with_phone(site, browser, purchase)
        wait_until_paid(site, browser, order_no)
        for slug in slugs:
            assert lesson(site, browser, slug).status_code == 200

        page = browser.get(site.url(f"/bundles/{BUNDLE}"), timeout=TIMEOUT)
        refused = post_form(browser, page, f"/bundles/{BUNDLE}/cart")
        assert urlsplit(refused.headers["Location"]).path == f"/bundles/{BUNDLE}"
        shown = browser.get(site.url(f"/bundles/{BUNDLE}"), timeout=TIMEOUT).text
        assert "You already own" in shown and courses[0]["title_en"] in shown
        assert browser.get(site.url("/cart/"), timeout=TIMEOUT).text.count("Remove") == 0


@pytest.mark.parametrize("live_site", ["inline", "rq"], indirect=True)
def test_a_member_studies_any_course_and_a_non_member_is_sent_to_buy(live_site: LiveSite) -> None:
    site = live_site
    with requests.Session() as browser:
        register(site, browser)
        refused = lesson(site, browser, "mlops")
        assert urlsplit(refused.headers["Location"]).path == "/courses/mlops"

        plans = browser.get(site.url("/membership/"), timeout=TIMEOUT)
        assert plans.status_code == 200 and "Monthly membership" in plans.text
        # The cheapest plan first: the monthly one.
        action = re.search(r'action="(/membership/[0-9]+/buy)"', plans.text)[1]
        bought = post_form(browser, plans, action, channel="alipay")
        assert bought.status_code == 302, bought.text
        order_no = re.fullmatch(r"/orders/([A-Za-z0-9]+)/pay", urlsplit(bought.headers["Location"]).path)[1]
        total_fen = half_up(Decimal(MONTHLY_FEN) * (1 + TAX_RATE))
        pay_with_phone(site, browser, Purchase(order_no, total_fen, []))
        wait_until_paid(site, browser, order_no)

        assert lesson(site, browser, "mlops").status_code == 200
        assert lesson(site, browser, "ielts-speaking").status_code == 200
        assert "You are a member until" in browser.get(site.url("/membership/"), timeout=TIMEOUT).text
        orders = browser.get(site.url("/orders"), timeout=TIMEOUT).text
        assert order_no in orders and "Membership" in orders


def test_an_unknown_bundle_or_plan_is_refused(live_site: LiveSite) -> None:
    with requests.Session() as browser:
        assert browser.get(live_site.url("/bundles/no-such-bundle"), timeout=TIMEOUT).status_code == 404
        register(live_site, browser)
        plans = browser.get(live_site.url("/membership/"), timeout=TIMEOUT)
        # The plans page's own form, sent for a plan that does not exist: back to the
        # plans page with the reason, and no order placed.
        form = form_posting_to(plans, re.search(r'action="(/membership/[0-9]+/buy)"', plans.text)[1])
        answer = browser.post(live_site.url("/membership/999/buy"), data={**form.fields, "channel": "alipay"},
                              allow_redirects=False, timeout=TIMEOUT)
        assert answer.status_code == 302 and urlsplit(answer.headers["Location"]).path == "/membership/"
        assert "This membership plan is not available." in browser.get(live_site.url("/membership/"),
                                                                       timeout=TIMEOUT).text
        assert "Membership" not in browser.get(live_site.url("/orders"), timeout=TIMEOUT).text.split("<main", 1)[1]
