"""Platform events end to end on a live server: an admin configures an endpoint in /admin
pointing at a real receiver (a stdlib HTTP server in this process that checks each
request with the README's code), a learner pays and gets a refund over HTTP, and the
periodic round (`flask jobs tick`, as the scheduler runs it) delivers the signed events.

The refusals: a body tampered with on the way and a stale timestamp fail the receiver's
check (400) and the delivery is tried again until the receiver accepts it; a receiver
answering 500 is retried on the schedule (shortened here through the environment of the
tick; tests/test_platform_events.py walks the real day-long schedule with the clock
fixture) and then the delivery is failed; a staff resend delivers again; and a duplicate
channel callback announces nothing new.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

import pytest
import requests

from tests.e2e.staff import approve_refund, ask_for_refund, log_in, wait_until_refunded
from tests.e2e.test_live_purchase import TIMEOUT, buy_two_courses, element_text, pay_with_phone, post_form, \
    wait_until_paid
from tests.e2e.test_live_wechat import database_rows
from tests.platform_receiver import Receiver, running_receiver

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveSite

ADMIN_EMAIL = "admin-e2e@example.com"
ADMIN_PASSWORD = "admin-password-123"
WITHIN_SECONDS = 30.0


def tick_until(site: LiveSite, done: Callable[[], bool], what: str) -> None:
    """Run the periodic round until ``done``; each round is a fresh `flask jobs tick`."""
    deadline = time.monotonic() + WITHIN_SECONDS
    while not done():
        assert time.monotonic() < deadline, f"never: {what}"
        site.flask("jobs", "tick")


def deliveries(site: LiveSite, order_no: str) -> list[tuple]:
    """(id, event type, status, tries, last HTTP status) of the order's deliveries."""
    return database_rows(
        site, "SELECT d.id, d.event_type, d.status, d.attempts, d.last_http_status FROM platform_deliveries d"
        " JOIN platform_events e ON e.id = d.event_id JOIN orders o ON o.id = e.order_id"
        " WHERE o.order_no = :order_no ORDER BY d.id", order_no=order_no,
    )


def create_endpoint(site: LiveSite, admin: requests.Session, receiver: Receiver) -> None:
    page = admin.get(site.url("/admin/platform_endpoint/create/"), timeout=TIMEOUT)
    assert page.status_code == 200, page.text
    refused = post_form(admin, page, "/admin/platform_endpoint/create/", url="ftp://lms.example.com/",
                        description="", event_types=["order.paid"])  # type: ignore[arg-type]
    assert refused.status_code == 200 and "Only http:// and https://" in refused.text
    created = post_form(admin, page, "/admin/platform_endpoint/create/", url=receiver.url,
                        description="The LMS", event_types=["order.paid", "order.refunded",  # type: ignore[arg-type]
                                                            "enrollment.granted", "enrollment.revoked"])
    assert created.status_code == 200, created.text
    receiver.secret = element_text(created, "endpoint-secret")
    assert receiver.secret.startswith("whsec_")
    [(secret_ciphertext,)] = database_rows(site, "SELECT secret_ciphertext FROM platform_endpoints")
    assert receiver.secret not in secret_ciphertext


def resend(site: LiveSite, admin: requests.Session, delivery_id: int) -> None:
    detail = admin.get(site.url(f"/admin/platform_delivery/{delivery_id}/"), timeout=TIMEOUT)
    assert detail.status_code == 200, detail.text
    answer = post_form(admin, detail, f"/admin/platform_delivery/{delivery_id}/resend", reason="LMS asked again")
    assert answer.status_code == 302, answer.text


@pytest.mark.parametrize("live_site", ["inline"], indirect=True)
def test_signed_events_reach_the_platform_and_bad_ones_are_refused(live_site: LiveSite) -> None:
    site = live_site
    site.env["PLATFORM_EVENTS_RETRY_SECONDS"] = "1,1,1"  # the ticks' schedule: 4 tries a second apart
    site.flask("users", "create", "--email", ADMIN_EMAIL, "--role", "admin", "--name", "Ada Admin",
               "--password", ADMIN_PASSWORD)
    with running_receiver() as receiver, requests.Session() as browser, requests.Session() as admin:
        log_in(site, admin, ADMIN_EMAIL, ADMIN_PASSWORD)
        create_endpoint(site, admin, receiver)

        purchase = buy_two_courses(site, browser)
        pay_with_phone(site, browser, purchase)
        wait_until_paid(site, browser, purchase.order_no)
        course_ids = sorted(course["id"] for course in purchase.courses)

        # A duplicate of the channel's callback: acknowledged, and no second event.
        [(sent_body,)] = database_rows(site, "SELECT n.sent_body FROM gateway_notifications n"
                                       " WHERE n.channel = 'alipay'")
        again = requests.post(site.url("/notify/alipay"), data=sent_body, timeout=TIMEOUT,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert again.text == "success"
        paid_deliveries = deliveries(site, purchase.order_no)
        assert sorted(row[1] for row in paid_deliveries) == ["enrollment.granted", "enrollment.granted", "order.paid"]

        # Tampered on the way, then replayed late: the receiver refuses both, we try again.
        receiver.mode = "tamper"
        tick_until(site, lambda: len(receiver.refused()) >= 3, "the tampered events were refused")
        assert {row[2:] for row in deliveries(site, purchase.order_no)} == {("pending", 1, 400)}
        receiver.mode = "stale"
        tick_until(site, lambda: len(receiver.refused()) >= 6, "the stale events were refused")
        assert all(not item.verified and item.answer == 400 for item in receiver.refused())
        receiver.mode = "ok"
        tick_until(site, lambda: len(receiver.accepted()) >= 3, "the events were delivered")
        assert {row[2:4] for row in deliveries(site, purchase.order_no)} == {("delivered", 3)}

        by_type: dict[str, list[dict]] = {}
        for item in receiver.accepted():
            assert item.verified
            by_type.setdefault(item.event_type, []).append(item.event)
        [order_paid] = by_type["order.paid"]
        assert order_paid["data"]["order_no"] == purchase.order_no
        assert order_paid["data"]["amount_fen"] == purchase.total_fen
        assert sorted(order_paid["data"]["course_ids"]) == course_ids
        assert sorted(event["data"]["course_id"] for event in by_type["enrollment.granted"]) == course_ids

        # The refund; the receiver is down (500) for the whole (shortened) schedule.
        ask_for_refund(site, browser, purchase.order_no)
        approve_refund(site, admin, purchase.order_no)
        wait_until_refunded(site, browser, purchase.order_no)

        receiver.mode = "fail"
        refund_rows = lambda: [row for row in deliveries(site, purchase.order_no)  # noqa: E731
                               if row[1] in ("order.refunded", "enrollment.revoked")]
        tick_until(site, lambda: {row[2] for row in refund_rows()} == {"failed"}, "the deliveries failed")
        assert sorted(row[1] for row in refund_rows()) == ["enrollment.revoked", "enrollment.revoked",
                                                          "order.refunded"]
        assert {row[3:] for row in refund_rows()} == {(4, 500)}

        # Staff resend each failed one once the receiver is back: delivered, same events.
        receiver.mode = "ok"
        failed = refund_rows()
        for delivery_id, *_ in failed:
            resend(site, admin, delivery_id)
        tick_until(site, lambda: len(receiver.accepted()) >= 6, "the resent events were delivered")
        resent = receiver.accepted()[3:]
        assert sorted(item.event_type for item in resent) == ["enrollment.revoked", "enrollment.revoked",
                                                             "order.refunded"]
        [order_refunded] = [item.event for item in resent if item.event_type == "order.refunded"]
        assert order_refunded["data"]["amount_fen"] == purchase.total_fen
        assert order_refunded["data"]["fully_refunded"] is True
        assert {int(item.delivery_id) for item in resent}.isdisjoint({row[0] for row in failed})

        log = admin.get(site.url("/admin/platform_delivery/?flt0_0=failed"), timeout=TIMEOUT)
        assert log.status_code == 200
        resends = database_rows(site, "SELECT COUNT(*) FROM audit_log WHERE action = 'platform_delivery.resend'")
        assert resends == [(3,)]


@pytest.mark.parametrize("live_site", ["rq"], indirect=True)
def test_an_rq_worker_delivers_the_events_of_a_payment(live_site: LiveSite) -> None:
    site = live_site
    site.flask("users", "create", "--email", ADMIN_EMAIL, "--role", "admin", "--name", "Ada Admin",
               "--password", ADMIN_PASSWORD)
    with running_receiver() as receiver, requests.Session() as browser, requests.Session() as admin:
        log_in(site, admin, ADMIN_EMAIL, ADMIN_PASSWORD)
        create_endpoint(site, admin, receiver)
        purchase = buy_two_courses(site, browser, channel="wechat")
        pay_with_phone(site, browser, purchase, channel="wechat")
        wait_until_paid(site, browser, purchase.order_no)
        site.flask("jobs", "tick")  # enqueues; the worker posts
        deadline = time.monotonic() + WITHIN_SECONDS
        while len(receiver.accepted()) < 3:
            assert time.monotonic() < deadline, f"the worker delivered {receiver.received}"
            time.sleep(0.2)
        assert sorted(item.event_type for item in receiver.accepted()) == [
            "enrollment.granted", "enrollment.granted", "order.paid"]
        assert all(item.verified for item in receiver.received)
