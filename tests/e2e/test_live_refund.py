"""A refund end to end on a live server, over HTTP only: the learner pays and asks for a
refund, support approves it in /admin, the job refunds at the emulator, the order shows
refunded, the course is closed again, and every ledger account of the order nets to zero.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urljoin

import pytest
import requests

from tests.e2e.staff import log_in, wait_until_refunded
from tests.e2e.test_live_purchase import (
    TIMEOUT,
    buy_two_courses,
    pay_with_phone,
    post_form,
    wait_until_paid,
)
from tests.e2e.test_live_wechat import database_rows

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveSite

SUPPORT_EMAIL = "support-e2e@example.com"
SUPPORT_PASSWORD = "support-password-123"


@pytest.mark.parametrize("live_site", ["inline", "rq"], indirect=True)
def test_a_refund_approved_in_the_back_office_returns_the_money(live_site: LiveSite) -> None:
    site = live_site
    site.flask("users", "create", "--email", SUPPORT_EMAIL, "--role", "support",
               "--name", "Sam Support", "--password", SUPPORT_PASSWORD)
    with requests.Session() as browser, requests.Session() as support:
        purchase = buy_two_courses(site, browser, channel="wechat")
        pay_with_phone(site, browser, purchase, channel="wechat")
        wait_until_paid(site, browser, purchase.order_no)
        lesson_url = site.url(f"/courses/{purchase.courses[0]['slug']}/lessons/1")
        assert browser.get(lesson_url, allow_redirects=False, timeout=TIMEOUT).status_code == 200

        refund_page = browser.get(site.url(f"/orders/{purchase.order_no}/refund"), timeout=TIMEOUT)
        assert refund_page.status_code == 200
        asked = post_form(browser, refund_page, f"/orders/{purchase.order_no}/refund",
                          reason="The course is not for me")
        assert asked.status_code == 302, asked.text
        assert "requested" in browser.get(site.url("/orders"), timeout=TIMEOUT).text

        log_in(site, support, SUPPORT_EMAIL, SUPPORT_PASSWORD)
        refund_list = support.get(site.url("/admin/refund/"), timeout=TIMEOUT)
        assert refund_list.status_code == 200 and purchase.order_no in refund_list.text
        [(refund_id,)] = database_rows(
            site, "SELECT r.id FROM refunds r JOIN orders o ON o.id = r.order_id"
            " WHERE o.order_no = :order_no", order_no=purchase.order_no,
        )
        detail = support.get(site.url(f"/admin/refund/details/?id={refund_id}"), timeout=TIMEOUT)
        assert detail.status_code == 200, detail.text
        approved = post_form(support, detail, f"/admin/refund/{refund_id}/approve",
                             reason="Within the window, one lesson opened")
        assert approved.status_code == 302, approved.text
        assert support.get(urljoin(detail.url, approved.headers["Location"]), timeout=TIMEOUT).ok

        wait_until_refunded(site, browser, purchase.order_no)

        orders_page = browser.get(site.url("/orders"), timeout=TIMEOUT).text
        assert re.search(r"refund [^<]*: succeeded", orders_page), orders_page
        closed = browser.get(lesson_url, allow_redirects=False, timeout=TIMEOUT)
        assert closed.status_code == 302, closed.status_code  # back to the course page

    [(refunded_fen, status)] = database_rows(
        site, "SELECT t.refunded_fen, t.status FROM gateway_wechat_trades t"
        " JOIN payment_attempts a ON a.out_trade_no = t.out_trade_no"
        " JOIN orders o ON o.id = a.order_id WHERE o.order_no = :order_no",
        order_no=purchase.order_no,
    )
    assert (refunded_fen, status) == (purchase.total_fen, "REFUND")
    sums = database_rows(
        site, "SELECT p.account, SUM(p.amount_fen) FROM postings p"
        " JOIN journal_entries e ON e.id = p.entry_id JOIN orders o ON o.id = e.order_id"
        " WHERE o.order_no = :order_no GROUP BY p.account", order_no=purchase.order_no,
    )
    assert len(sums) >= 4 and all(total == 0 for _, total in sums), sums
    decisions = database_rows(
        site, "SELECT action, actor_email, reason FROM audit_log WHERE target_type = 'refund'"
        " AND target_id = :refund_id ORDER BY id", refund_id=str(refund_id),
    )
    assert decisions[0] == ("refund.approve", SUPPORT_EMAIL, "Within the window, one lesson opened")
