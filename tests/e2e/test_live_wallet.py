"""The prepaid balance end to end on a live server, over HTTP only: a learner tops up ¥500
through the emulator and holds ¥520 (¥500 paid in, ¥20 bonus), pays one course from the
balance alone, is refused balance-only for a dearer one and pays it with the balance plus
WeChat Pay for the rest, then support refunds that one in /admin: the channel's part goes
back through the emulator, the balance part (paid money and bonus apart) to the balance.
The refusals: a top-up below the minimum, and someone else's top-up order.

Two racing spends of one balance are tested with real threads in tests/test_wallet.py
(against PostgreSQL when TEST_POSTGRES_URL is set): the web checkout takes the same
row lock those threads race for.
"""
from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.staff import approve_refund, ask_for_refund, order_status, wait_until_refunded
from tests.e2e.test_live_purchase import (
    TIMEOUT,
    Purchase,
    element_text,
    half_up,
    pay_with_phone,
    post_form,
    wait_until_paid,
    yuan,
)
from tests.e2e.test_live_refund import SUPPORT_EMAIL, SUPPORT_PASSWORD, log_in
from tests.e2e.test_live_wechat import database_rows

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveSite

TAX_RATE = Decimal("0.05")
BALANCE_ONLY_SLUG = "mlops"  # ¥399 → ¥418.95 with tax
MIXED_SLUG = "distributed-systems"  # ¥299 → ¥313.95 with tax


def register(site: LiveSite, browser: requests.Session, name: str) -> None:
    page = browser.get(site.url("/register"), timeout=TIMEOUT)
    email = f"{name.lower().replace(' ', '-')}-{time.monotonic_ns()}@example.com"
    answer = post_form(browser, page, "/register", email=email,
                       display_name=name, password="correct-horse-battery", confirm="correct-horse-battery")
    assert answer.status_code == 302, answer.text


def wallet(site: LiveSite, browser: requests.Session) -> tuple[str, str, str]:
    page = browser.get(site.url("/wallet"), timeout=TIMEOUT)
    assert page.status_code == 200
    return element_text(page, "wallet-total"), element_text(page, "wallet-paid"), element_text(page, "wallet-bonus")


def ask_top_up(site: LiveSite, browser: requests.Session, amount: str, channel: str) -> requests.Response:
    page = browser.get(site.url("/wallet"), timeout=TIMEOUT)
    return post_form(browser, page, "/wallet/topup", amount=amount, channel=channel)


def order_no_of(answer: requests.Response) -> str:
    assert answer.status_code == 302, answer.text
    path = urlsplit(answer.headers["Location"]).path
    assert path.startswith("/orders/") and path.endswith("/pay"), path
    return path.split("/")[2]


def course(site: LiveSite, browser: requests.Session, slug: str) -> dict:
    catalog = browser.get(site.url("/api/v1/courses"), timeout=TIMEOUT).json()["courses"]
    return next(item for item in catalog if item["slug"] == slug)


def check_out(
    site: LiveSite, browser: requests.Session, item: dict, use_balance: str, channel: str
) -> requests.Response:
    catalog_page = browser.get(site.url("/"), timeout=TIMEOUT)
    assert post_form(browser, catalog_page, f"/cart/add/{item['id']}").status_code == 302
    cart_page = browser.get(site.url("/cart/"), timeout=TIMEOUT)
    assert 'id="use-balance"' in cart_page.text  # offered: the learner has a balance
    return post_form(browser, cart_page, "/cart/checkout", channel=channel, use_balance=use_balance)


@pytest.mark.parametrize("live_site", ["inline", "rq"], indirect=True)
def test_a_learner_tops_up_pays_from_the_balance_and_gets_a_refund_back_into_it(live_site: LiveSite) -> None:
    site = live_site
    site.flask("users", "create", "--email", SUPPORT_EMAIL, "--role", "support",
               "--name", "Sam Support", "--password", SUPPORT_PASSWORD)
    with requests.Session() as browser, requests.Session() as support:
        register(site, browser, "Wallet Learner")
        topup_no = order_no_of(ask_top_up(site, browser, "500", "alipay"))
        pay_with_phone(site, browser, Purchase(topup_no, 50000, []), channel="alipay")
        wait_until_paid(site, browser, topup_no)
        assert wallet(site, browser) == ("¥520.00", "¥500.00", "¥20.00")

        dear = course(site, browser, BALANCE_ONLY_SLUG)
        dear_fen = half_up(Decimal(dear["price_fen"]) * (1 + TAX_RATE))
        paid_at_once = order_no_of(check_out(site, browser, dear, "full", "alipay"))
        assert order_status(site, browser, paid_at_once) == "paid"  # no QR, no wait
        assert dear["title_en"] in browser.get(site.url("/my/courses"), timeout=TIMEOUT).text
        left_fen = 52000 - dear_fen
        assert wallet(site, browser) == (yuan(left_fen), yuan(left_fen - 2000), "¥20.00")

        # Balance-only for more than the balance holds: refused, nothing placed.
        other = course(site, browser, MIXED_SLUG)
        other_fen = half_up(Decimal(other["price_fen"]) * (1 + TAX_RATE))
        refused = check_out(site, browser, other, "full", "wechat")
        assert refused.status_code == 302 and urlsplit(refused.headers["Location"]).path == "/cart/"
        cart_page = browser.get(site.url("/cart/"), timeout=TIMEOUT)
        assert "Your balance is too low" in cart_page.text
        assert wallet(site, browser)[0] == yuan(left_fen)

        # The balance and WeChat Pay for the rest.
        mixed = order_no_of(post_form(browser, cart_page, "/cart/checkout", channel="wechat", use_balance="part"))
        assert wallet(site, browser) == ("¥0.00", "¥0.00", "¥0.00")  # held for the order
        pay_with_phone(site, browser, Purchase(mixed, other_fen - left_fen, []), channel="wechat")
        wait_until_paid(site, browser, mixed)

        ask_for_refund(site, browser, mixed)
        log_in(site, support, SUPPORT_EMAIL, SUPPORT_PASSWORD)
        approve_refund(site, support, mixed)
        wait_until_refunded(site, browser, mixed)
        # The balance part is back as it was spent: paid money and bonus apart.
        assert wallet(site, browser) == (yuan(left_fen), yuan(left_fen - 2000), "¥20.00")

    [(refunded_fen, status)] = database_rows(
        site, "SELECT t.refunded_fen, t.status FROM gateway_wechat_trades t"
        " JOIN payment_attempts a ON a.out_trade_no = t.out_trade_no"
        " JOIN orders o ON o.id = a.order_id WHERE o.order_no = :order_no", order_no=mixed)
    assert (refunded_fen, status) == (other_fen - left_fen, "REFUND")  # only the channel's part
    sums = database_rows(
        site, "SELECT p.account, SUM(p.amount_fen) FROM postings p JOIN journal_entries e ON e.id = p.entry_id"
        " JOIN orders o ON o.id = e.order_id WHERE o.order_no = :order_no GROUP BY p.account", order_no=mixed)
    assert len(sums) >= 5 and all(total == 0 for _, total in sums), sums


@pytest.mark.parametrize("live_site", ["inline"], indirect=True)
def test_a_top_up_below_the_minimum_and_someone_elses_top_up_are_refused(live_site: LiveSite) -> None:
    site = live_site
    with requests.Session() as browser, requests.Session() as stranger:
        register(site, browser, "Small Spender")
        below = ask_top_up(site, browser, "9.99", "wechat")
        assert below.status_code == 302 and urlsplit(below.headers["Location"]).path == "/wallet"
        page = browser.get(site.url("/wallet"), timeout=TIMEOUT)
        assert "A top-up must be at least ¥10.00." in page.text
        assert database_rows(site, "SELECT count(*) FROM orders") == [(0,)]

        mine = order_no_of(ask_top_up(site, browser, "10", "wechat"))
        register(site, stranger, "Stranger")
        for path in (f"/orders/{mine}/pay", f"/orders/{mine}/status", f"/orders/{mine}/refund"):
            assert stranger.get(site.url(path), timeout=TIMEOUT).status_code == 404, path
        assert wallet(site, stranger) == ("¥0.00", "¥0.00", "¥0.00")
