"""Staff on the live server: signing in with the password, then the second factor; and a
refund as a learner asks for it, support approves it and the order shows it refunded."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import pyotp
import requests

from tests.e2e.test_live_purchase import TIMEOUT, element_text, post_form
from tests.e2e.test_live_wechat import database_rows

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveSite


def log_in(site: LiveSite, session: requests.Session, email: str, password: str) -> None:
    """The password, then the second factor: a staff member made with `flask users create`
    sets it up on the first login, scanning the page's secret into an authenticator."""
    page = session.get(site.url("/login"), timeout=TIMEOUT)
    answer = post_form(session, page, "/login", email=email, password=password)
    assert answer.status_code == 302, answer.text
    setup = session.get(urljoin(page.url, answer.headers["Location"]), timeout=TIMEOUT)
    assert urlsplit(setup.url).path == "/second-factor/setup", setup.url
    secret = element_text(setup, "totp-secret").replace(" ", "")
    done = post_form(session, setup, "/second-factor/setup", code=pyotp.TOTP(secret).now())
    assert done.status_code == 200 and 'id="recovery-codes"' in done.text, done.text


def ask_for_refund(site: LiveSite, browser: requests.Session, order_no: str, reason: str = "Not for me") -> None:
    """The learner asks for the whole order back from its refund page."""
    refund_page = browser.get(site.url(f"/orders/{order_no}/refund"), timeout=TIMEOUT)
    asked = post_form(browser, refund_page, f"/orders/{order_no}/refund", reason=reason)
    assert asked.status_code == 302, asked.text


def approve_refund(site: LiveSite, staff: requests.Session, order_no: str,
                   reason: str = "Within the window") -> int:
    """A signed-in staff member approves the order's refund request from its detail page;
    returns the refund's id."""
    [(refund_id,)] = database_rows(
        site, "SELECT r.id FROM refunds r JOIN orders o ON o.id = r.order_id WHERE o.order_no = :order_no",
        order_no=order_no)
    detail = staff.get(site.url(f"/admin/refund/details/?id={refund_id}"), timeout=TIMEOUT)
    approved = post_form(staff, detail, f"/admin/refund/{refund_id}/approve", reason=reason)
    assert approved.status_code == 302, approved.text
    assert staff.get(urljoin(detail.url, approved.headers["Location"]), timeout=TIMEOUT).ok
    return refund_id


REFUNDED_WITHIN_SECONDS = 20.0


def order_status(site: LiveSite, browser: requests.Session, order_no: str) -> str:
    return browser.get(site.url(f"/orders/{order_no}/status"), timeout=TIMEOUT).json()["status"]


def wait_until_refunded(site: LiveSite, browser: requests.Session, order_no: str) -> None:
    """Poll the learner's order status until the approved refund has gone through."""
    deadline = time.monotonic() + REFUNDED_WITHIN_SECONDS
    while order_status(site, browser, order_no) != "refunded":
        assert time.monotonic() < deadline, "the refund did not complete"
        time.sleep(0.2)
