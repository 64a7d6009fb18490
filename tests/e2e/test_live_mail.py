"""E-mail on a live server: the learner pays (the channel's callback arriving twice) and
gets one order confirmation as an .eml file in the folder the site was configured with;
a refund brings its status e-mails; an SMTP server that refuses leaves the message failed
in the back office until support resends it, and it then arrives once.

The periodic round runs as `flask jobs scheduler`, as in production; with RQ it enqueues
the deliveries for the worker, inline it sends them itself.
"""
from __future__ import annotations

import time
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pytest
import requests

from tests.e2e.staff import approve_refund, ask_for_refund, log_in, order_status
from tests.e2e.test_live_purchase import TIMEOUT, buy_two_courses, pay_with_phone, post_form, wait_until_paid
from tests.e2e.test_live_refund import SUPPORT_EMAIL, SUPPORT_PASSWORD
from tests.e2e.test_live_wechat import database_rows
from tests.smtp_server import start_smtp_server

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveSite

MAIL_WITHIN_SECONDS = 30.0


def mails(site: LiveSite) -> list[Message]:
    folder = Path(site.env["MAIL_OUTBOX_DIR"])
    return [message_from_bytes(path.read_bytes()) for path in sorted(folder.glob("*.eml"))]


def text_of(message: Message) -> str:
    return message.get_payload(decode=True).decode()


def wait_for(what: str, condition: Callable[[], bool], seconds: float = MAIL_WITHIN_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds}s"
        time.sleep(0.2)


def outbox_rows(site: LiveSite) -> list[tuple]:
    return database_rows(site, "SELECT key, status, attempts FROM outbox_messages ORDER BY id")


def switch_on_duplicate_callbacks(site: LiveSite) -> None:
    with requests.Session() as operator:
        page = operator.get(site.url("/gateway/"), timeout=TIMEOUT)
        switched = post_form(operator, page, "/gateway/faults", mode="duplicate_notify", channel="*",
                             out_trade_no="", delay_seconds="0")
        assert switched.status_code == 302, switched.text


@pytest.mark.parametrize("live_site", ["inline", "rq"], indirect=True)
def test_a_paid_order_and_its_refund_are_mailed_once_each(live_site: LiveSite) -> None:
    site = live_site
    site.start("scheduler", "jobs", "scheduler", "--interval", "1")
    site.flask("users", "create", "--email", SUPPORT_EMAIL, "--role", "support",
               "--name", "Sam Support", "--password", SUPPORT_PASSWORD)
    switch_on_duplicate_callbacks(site)
    with requests.Session() as browser, requests.Session() as support:
        purchase = buy_two_courses(site, browser)
        pay_with_phone(site, browser, purchase)
        wait_until_paid(site, browser, purchase.order_no)
        wait_for("the order confirmation", lambda: len(mails(site)) == 1)
        # The channel's callback came twice (one inbox row, two deliveries).
        wait_for("the second copy of the callback", lambda: database_rows(
            site, "SELECT deliveries FROM notification_inbox") == [(2,)], seconds=10)
        site.flask("jobs", "tick")  # one more round on top of the scheduler's: nothing new
        [confirmation] = mails(site)
        assert purchase.order_no in confirmation["Subject"]
        assert confirmation["Message-ID"].startswith("<") and confirmation["To"].startswith("e2e-")
        body = text_of(confirmation)
        total = f"¥{purchase.total_fen // 100}.{purchase.total_fen % 100:02d}"
        assert total in body and site.url(f"/orders/{purchase.order_no}/pay") in body
        for course in purchase.courses:
            assert course["title_en"] in body  # the site's default language here is English

        ask_for_refund(site, browser, purchase.order_no)
        wait_for("the refund request's receipt", lambda: len(mails(site)) == 2)
        log_in(site, support, SUPPORT_EMAIL, SUPPORT_PASSWORD)
        approve_refund(site, support, purchase.order_no)
        wait_for("the refund", lambda: order_status(site, browser, purchase.order_no) == "refunded")
        wait_for("the refund's success e-mail", lambda: len(mails(site)) == 3)
        outbox = support.get(site.url("/admin/outbox/"), timeout=TIMEOUT)
        assert outbox.status_code == 200 and f"Order {purchase.order_no} is paid" in outbox.text

    subjects = [message["Subject"] for message in mails(site)]
    assert len(subjects) == 3, subjects  # one file per message, none sent twice
    assert "refund request" in subjects[1] and "on its way" in subjects[2], subjects
    assert [(key.split(":")[0], status, attempts) for key, status, attempts in outbox_rows(site)] == [
        ("order-paid", "sent", 1), ("refund-requested", "sent", 1), ("refund-succeeded", "sent", 1)]


def test_a_refused_message_fails_in_the_back_office_and_support_resends_it(live_site: LiveSite) -> None:
    site = live_site
    smtp, server = start_smtp_server()
    smtp.refusal = "550 5.1.1 Mailbox unavailable"
    try:
        # The round (and so the sending) runs in the scheduler: it alone talks to SMTP.
        scheduler_env = {**site.env, "MAIL_BACKEND": "smtp", "MAIL_SERVER": smtp.host,
                         "MAIL_PORT": str(smtp.port), "MAIL_MAX_ATTEMPTS": "1"}
        site_env, site.env = site.env, scheduler_env
        site.start("scheduler", "jobs", "scheduler", "--interval", "1")
        site.env = site_env
        site.flask("users", "create", "--email", "ada-e2e@example.com", "--role", "admin",
                   "--name", "Ada Admin", "--password", SUPPORT_PASSWORD)
        with requests.Session() as browser, requests.Session() as admin:
            purchase = buy_two_courses(site, browser)
            pay_with_phone(site, browser, purchase)
            wait_until_paid(site, browser, purchase.order_no)
            wait_for("the refused attempt", lambda: [row[1:] for row in outbox_rows(site)] == [("failed", 1)])
            assert smtp.received == [] and smtp.connections == 1

            log_in(site, admin, "ada-e2e@example.com", SUPPORT_PASSWORD)
            [(message_id,)] = database_rows(site, "SELECT id FROM outbox_messages")
            detail = admin.get(site.url(f"/admin/outbox/{message_id}/"), timeout=TIMEOUT)
            assert detail.status_code == 200 and "SMTP 550" in detail.text
            smtp.refusal = None
            resent = post_form(admin, detail, f"/admin/outbox/{message_id}/resend", reason="Mailbox is back")
            assert resent.status_code == 302, resent.text
            wait_for("the resent message", lambda: len(smtp.received) == 1)
            wait_for("its record", lambda: [row[1:] for row in outbox_rows(site)] == [("sent", 1)])
        [received] = smtp.received
        assert purchase.order_no in received.parsed()["Subject"]
        assert database_rows(site, "SELECT action, actor_email, reason FROM audit_log"
                                   " WHERE target_type = 'outbox_message'") == [
            ("outbox.resend", "ada-e2e@example.com", "Mailbox is back")]
        assert mails(site) == []  # nothing went to the console folder
    finally:
        server.shutdown()
        server.server_close()
