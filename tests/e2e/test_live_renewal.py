"""Access periods and renewal on a live server, over HTTP: a time-limited demo course
bought, the reminder six days before its end (once per end date), a renewal that moves
the end from the old end date, an expired course that shows Renew and refuses lessons
until renewed, and the refusals: renewing a course not owned or refunded, someone
else's order, a duplicated callback (extends once), a refund of a renewal (its days only)."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from tests.e2e.staff import approve_refund, ask_for_refund, wait_until_refunded
from tests.e2e.test_live_purchase import TIMEOUT, Purchase, pay_with_phone, post_form, wait_until_paid
from tests.e2e.test_live_refund import SUPPORT_EMAIL, SUPPORT_PASSWORD, log_in
from tests.e2e.test_live_wechat import database_rows

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveSite

LIMITED = "distributed-systems"  # 365 days, renewal ¥149.00 in the demo catalog
LIFETIME = "python-basics"
DAYS = 365


def execute(site: LiveSite, sql: str, **params: object) -> None:
    """A write as the site would make it: datetimes bound as DateTime, so SQLite stores
    the same text the app's own writes do."""
    statement = sa.text(sql).bindparams(*(
        sa.bindparam(name, type_=sa.DateTime()) for name, value in params.items() if isinstance(value, datetime)
    ))
    engine = sa.create_engine(site.env["DATABASE_URL"])
    try:
        with engine.begin() as connection:
            connection.execute(statement, params)
    finally:
        engine.dispose()


def as_datetime(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def register(site: LiveSite, browser: requests.Session) -> str:
    page = browser.get(site.url("/register"), timeout=TIMEOUT)
    email = f"renew-{time.monotonic_ns()}@example.com"
    done = post_form(browser, page, "/register", email=email, display_name="Renewing Learner",
                     password="correct-horse-battery", confirm="correct-horse-battery")
    assert done.status_code == 302, done.text
    return email


def course_id(site: LiveSite, browser: requests.Session, slug: str) -> int:
    catalog = browser.get(site.url("/api/v1/courses"), timeout=TIMEOUT).json()["courses"]
    return next(course["id"] for course in catalog if course["slug"] == slug)


def order_no_of(response: requests.Response) -> str:
    assert response.status_code == 302, response.text
    match = re.fullmatch(r"/orders/([A-Za-z0-9]+)/pay", urlsplit(response.headers["Location"]).path)
    assert match, response.headers["Location"]
    return match.group(1)


def buy(site: LiveSite, browser: requests.Session, slug: str) -> Purchase:
    catalog_page = browser.get(site.url("/"), timeout=TIMEOUT)
    assert post_form(browser, catalog_page, f"/cart/add/{course_id(site, browser, slug)}").status_code == 302
    order_no = order_no_of(post_form(browser, browser.get(site.url("/cart/"), timeout=TIMEOUT),
                                     "/cart/checkout", channel="alipay"))
    return paid(site, browser, order_no)


def paid(site: LiveSite, browser: requests.Session, order_no: str) -> Purchase:
    [(total_fen,)] = database_rows(site, "SELECT total_fen FROM orders WHERE order_no = :n", n=order_no)
    purchase = Purchase(order_no, total_fen, [])
    pay_with_phone(site, browser, purchase)
    wait_until_paid(site, browser, order_no)
    return purchase


def renew(site: LiveSite, browser: requests.Session, slug: str = LIMITED) -> requests.Response:
    page = browser.get(site.url(f"/courses/{slug}/renew"), allow_redirects=False, timeout=TIMEOUT)
    if page.status_code != 200:
        return page
    # One form per channel on the page: press Alipay's.
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    assert token and 'data-renew="alipay"' in page.text, page.text
    return browser.post(site.url(f"/courses/{slug}/renew"), data={"csrf_token": token.group(1), "channel": "alipay"},
                        allow_redirects=False, timeout=TIMEOUT)


def enrollment_end(site: LiveSite, email: str) -> tuple[datetime | None, object]:
    [(expires_at, reminded)] = database_rows(
        site, "SELECT e.expires_at, e.reminded_for_expiry FROM enrollments e JOIN users u"
        " ON u.id = e.user_id JOIN courses c ON c.id = e.course_id"
        " WHERE u.email = :email AND c.slug = :slug", email=email, slug=LIMITED)
    return (as_datetime(expires_at) if expires_at else None), reminded


def set_end(site: LiveSite, email: str, end: datetime) -> None:
    execute(site, "UPDATE enrollments SET expires_at = :end WHERE course_id = (SELECT id FROM courses"
            " WHERE slug = :slug) AND user_id = (SELECT id FROM users WHERE email = :email)",
            end=end, slug=LIMITED, email=email)


@pytest.mark.parametrize("live_site", ["inline", "rq"], indirect=True)
def test_a_time_limited_course_is_reminded_renewed_from_its_end_and_renewed_after_expiry(
    live_site: LiveSite,
) -> None:
    site = live_site
    with requests.Session() as browser:
        email = register(site, browser)
        before = utc_now().replace(microsecond=0)
        buy(site, browser, LIMITED)
        end, _ = enrollment_end(site, email)
        assert before + timedelta(days=DAYS) <= end <= utc_now() + timedelta(days=DAYS)
        lesson = site.url(f"/courses/{LIMITED}/lessons/1")
        assert browser.get(lesson, allow_redirects=False, timeout=TIMEOUT).status_code == 200

        # Six days before the end: the banner, and one reminder however often the job runs.
        old_end = (utc_now() + timedelta(days=6)).replace(microsecond=0)
        set_end(site, email, old_end)
        my_courses = browser.get(site.url("/my/courses"), timeout=TIMEOUT).text
        assert "renewal-reminder" in my_courses and f"/courses/{LIMITED}/renew" in my_courses
        site.flask("jobs", "tick")
        site.flask("jobs", "tick")  # with RQ, the worker runs the reminder jobs
        deadline = time.monotonic() + 20
        while (reminded := enrollment_end(site, email)[1]) is None:
            assert time.monotonic() < deadline, "no reminder was recorded"
            time.sleep(0.2)
        assert as_datetime(reminded) == old_end

        # Renewing moves the end from the old end date, not from today.
        renewal = order_no_of(renew(site, browser))
        [(kind, days, list_price)] = database_rows(
            site, "SELECT l.kind, l.access_days, l.list_price_fen FROM order_lines l JOIN orders o"
            " ON o.id = l.order_id WHERE o.order_no = :n", n=renewal)
        assert (kind, days, list_price) == ("renewal", DAYS, 14900)
        paid(site, browser, renewal)
        new_end, _ = enrollment_end(site, email)
        assert new_end == old_end + timedelta(days=DAYS)
        [(extensions,)] = database_rows(site, "SELECT COUNT(*) FROM access_extensions")
        assert extensions == 1
        assert "renewal-reminder" not in browser.get(site.url("/my/courses"), timeout=TIMEOUT).text

        # Someone else cannot see or pay this renewal order, nor renew a course they lack.
        with requests.Session() as stranger:
            register(site, stranger)
            assert stranger.get(site.url(f"/orders/{renewal}/pay"), timeout=TIMEOUT).status_code == 404
            refused = renew(site, stranger)
            assert refused.status_code == 302 and urlsplit(refused.headers["Location"]).path == f"/courses/{LIMITED}"
            course_page = stranger.get(site.url(f"/courses/{LIMITED}"), timeout=TIMEOUT).text
            assert "You do not own this course." in course_page

        # Expired: Renew instead of Study, lessons refused with the renew link.
        set_end(site, email, utc_now() - timedelta(days=1))
        my_courses = browser.get(site.url("/my/courses"), timeout=TIMEOUT).text
        assert "data-renew" in my_courses and "data-study" not in my_courses
        closed = browser.get(lesson, allow_redirects=False, timeout=TIMEOUT)
        assert closed.status_code == 302 and urlsplit(closed.headers["Location"]).path == f"/courses/{LIMITED}/renew"
        renew_page = browser.get(site.url(f"/courses/{LIMITED}/renew"), timeout=TIMEOUT).text
        assert "Your access to this course has ended." in renew_page
        restart = utc_now().replace(microsecond=0)
        paid(site, browser, order_no_of(renew(site, browser)))
        restored, _ = enrollment_end(site, email)
        assert restart + timedelta(days=DAYS) <= restored <= utc_now() + timedelta(days=DAYS)
        assert browser.get(lesson, allow_redirects=False, timeout=TIMEOUT).status_code == 200

        # A lifetime course has nothing to renew.
        refused = renew(site, browser, LIFETIME)
        assert refused.status_code == 302 and urlsplit(refused.headers["Location"]).path == f"/courses/{LIFETIME}"


def refund_in_full(site: LiveSite, browser: requests.Session, support: requests.Session, order_no: str) -> None:
    """The learner asks for the whole order back, support approves in /admin, the job
    refunds at the emulator."""
    ask_for_refund(site, browser, order_no, reason="No longer needed")
    approve_refund(site, support, order_no, reason="policy ok")
    wait_until_refunded(site, browser, order_no)


@pytest.mark.parametrize("live_site", ["inline"], indirect=True)
def test_a_duplicated_callback_extends_once_and_refunds_take_back_only_their_own_days(
    live_site: LiveSite,
) -> None:
    site = live_site
    site.flask("users", "create", "--email", SUPPORT_EMAIL, "--role", "support",
               "--name", "Sam Support", "--password", SUPPORT_PASSWORD)
    with requests.Session() as browser, requests.Session() as support:
        email = register(site, browser)
        purchase = buy(site, browser, LIMITED)
        bought_end, _ = enrollment_end(site, email)

        # Every notification of the renewal arrives twice: one extension, one year.
        execute(site, "INSERT INTO gateway_faults (channel, mode, delay_seconds, created_at)"
                " VALUES ('*', 'duplicate_notify', 0, :now)", now=utc_now())
        renewal = order_no_of(renew(site, browser))
        paid(site, browser, renewal)
        deadline = time.monotonic() + 20
        while database_rows(site, "SELECT i.deliveries FROM notification_inbox i JOIN payment_attempts a"
                            " ON a.id = i.attempt_id JOIN orders o ON o.id = a.order_id"
                            " WHERE o.order_no = :n", n=renewal) != [(2,)]:
            assert time.monotonic() < deadline, "the second delivery never came"
            time.sleep(0.2)
        renewed_end, _ = enrollment_end(site, email)
        assert renewed_end == bought_end + timedelta(days=DAYS)
        assert database_rows(site, "SELECT COUNT(*) FROM access_extensions") == [(1,)]

        # A refund of the renewal takes back its year only; the purchase's days stay.
        log_in(site, support, SUPPORT_EMAIL, SUPPORT_PASSWORD)
        refund_in_full(site, browser, support, renewal)
        assert enrollment_end(site, email)[0] == bought_end
        lesson = site.url(f"/courses/{LIMITED}/lessons/1")
        assert browser.get(lesson, allow_redirects=False, timeout=TIMEOUT).status_code == 200

        # The purchase refunded: the course is gone, and renewing it is refused.
        refund_in_full(site, browser, support, purchase.order_no)
        assert browser.get(lesson, allow_redirects=False, timeout=TIMEOUT).status_code == 302
        refused = renew(site, browser)
        assert refused.status_code == 302 and urlsplit(refused.headers["Location"]).path == f"/courses/{LIMITED}"
        assert "You do not own this course." in browser.get(site.url(f"/courses/{LIMITED}"), timeout=TIMEOUT).text
        [(orders,)] = database_rows(site, "SELECT COUNT(*) FROM orders")
        assert orders == 2
