"""Receipts on a live server, over HTTP only: a paid order yields one payment receipt
that verifies with the public key the site publishes, checked here with the
`cryptography` package and not our code; a forged receipt and a bad signature are
refused on the public verify page; someone else's receipt is not found; a callback
delivered twice, and once more with a new notification id, yields no second receipt;
a refund yields a refund receipt.
"""
from __future__ import annotations

import base64
import html
import json
import re
import time
from typing import TYPE_CHECKING

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from tests.alipay_oracle import notification_fields, signed_body
from tests.e2e.staff import approve_refund, ask_for_refund, log_in, wait_until_refunded
from tests.e2e.test_live_purchase import (
    TIMEOUT,
    buy_two_courses,
    pay_with_phone,
    post_form,
    wait_until_paid,
)
from tests.e2e.test_live_refund import SUPPORT_EMAIL, SUPPORT_PASSWORD
from tests.e2e.test_live_wechat import database_rows

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveSite

WITHIN_SECONDS = 20.0


def receipt_links(site: LiveSite, browser: requests.Session, order_no: str) -> list[str]:
    """The receipt numbers My orders links to for the order, in order."""
    page = browser.get(site.url("/orders"), timeout=TIMEOUT)
    assert page.status_code == 200
    row = re.search(rf'<tr class="order" data-order-no="{order_no}">(.*?)</tr>', page.text, re.S)
    assert row, page.text
    numbers = re.findall(r'href="/receipts/([A-Z0-9]+)"', row.group(1))
    assert all(f'href="/receipts/{number}.pdf"' in row.group(1) for number in numbers)
    return numbers


def pre_text(page: requests.Response, element_id: str) -> str:
    match = re.search(rf'<(?:pre|code) id="{element_id}">(.*?)</(?:pre|code)>', page.text, re.S)
    assert match, f"no #{element_id} on {page.url}"
    return html.unescape(match.group(1))


def verifies_independently(text: str, signature: str, public_pem: bytes) -> bool:
    key = serialization.load_pem_public_key(public_pem)
    try:
        key.verify(base64.b64decode(signature), text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def check_on_verify_page(site: LiveSite, visitor: requests.Session, text: str, signature: str) -> tuple[str, str]:
    """What the public page says: ("true", "") or ("false", reason), and its sentence."""
    page = visitor.get(site.url("/receipts/verify"), timeout=TIMEOUT)
    assert page.status_code == 200
    answer = post_form(visitor, page, "/receipts/verify", receipt=text, signature=signature)
    assert answer.status_code == 200, answer.text
    match = re.search(r'id="verify-result" data-valid="(true|false)"(?: data-reason="([a-z_]+)")?[^>]*>([^<]*)<',
                      answer.text)
    assert match, answer.text
    return match.group(1) + ":" + (match.group(2) or ""), html.unescape(match.group(3))


def paid_receipt(site: LiveSite, browser: requests.Session, channel: str) -> tuple[str, str]:
    purchase = buy_two_courses(site, browser, channel=channel)
    pay_with_phone(site, browser, purchase, channel=channel)
    wait_until_paid(site, browser, purchase.order_no)
    return purchase.order_no, purchase.total_fen


@pytest.mark.parametrize("live_site", ["inline", "rq"], indirect=True)
def test_a_paid_order_has_one_receipt_anyone_can_check_and_no_one_can_forge(live_site: LiveSite) -> None:
    site = live_site
    with requests.Session() as operator:
        gateway = operator.get(site.url("/gateway/"), timeout=TIMEOUT)
        fault = post_form(operator, gateway, "/gateway/faults", mode="duplicate_notify", channel="*",
                          out_trade_no="", delay_seconds="0")
        assert fault.status_code == 302, fault.text
    with requests.Session() as browser, requests.Session() as stranger, requests.Session() as other:
        order_no, total_fen = paid_receipt(site, browser, "alipay")
        [number] = receipt_links(site, browser, order_no)

        page = browser.get(site.url(f"/receipts/{number}"), timeout=TIMEOUT)
        assert page.status_code == 200
        text, signature = pre_text(page, "receipt-json"), pre_text(page, "receipt-signature").strip()
        fields = json.loads(text)
        assert (fields["order_no"], fields["amount_fen"], fields["kind"]) == (order_no, total_fen, "payment")
        assert fields["paid_at"].endswith("+08:00") and "@example.com" in fields["learner"]
        assert "e2e-" not in fields["learner"]  # masked: the address itself is not there

        public_pem = stranger.get(site.url("/receipts/public-key.pem"), timeout=TIMEOUT)
        assert public_pem.status_code == 200 and public_pem.content.startswith(b"-----BEGIN PUBLIC KEY-----")
        assert verifies_independently(text, signature, public_pem.content)
        forged = json.dumps({**fields, "amount_fen": fields["amount_fen"] - 1}, sort_keys=True,
                            separators=(",", ":"), ensure_ascii=False)
        assert not verifies_independently(forged, signature, public_pem.content)

        pdf = browser.get(site.url(f"/receipts/{number}.pdf"), timeout=TIMEOUT)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

        # The public page, as a stranger: the real one, a forged amount, a bad signature.
        verdict, sentence = check_on_verify_page(site, stranger, text, signature)
        assert verdict == "true:" and sentence.startswith("Valid: issued by CourseCashier"), sentence
        verdict, sentence = check_on_verify_page(site, stranger, forged, signature)
        assert verdict == "false:signature_mismatch" and sentence.startswith("NOT valid"), sentence
        other_signature = base64.b64encode(bytes(256)).decode()
        assert check_on_verify_page(site, stranger, text, other_signature)[0] == "false:signature_mismatch"
        assert check_on_verify_page(site, stranger, text, "%%% not base64")[0] == "false:bad_signature_encoding"
        assert check_on_verify_page(site, stranger, json.dumps(fields, indent=2), signature)[0] == \
            "false:not_canonical"
        verify_page = stranger.get(site.url("/receipts/verify"), timeout=TIMEOUT)
        huge = post_form(stranger, verify_page, "/receipts/verify", receipt="x" * 300_000, signature="A")
        assert huge.status_code == 413 and "NOT valid" in huge.text

        # Someone else: the receipt and its PDF are not there.
        register = other.get(site.url("/register"), timeout=TIMEOUT)
        assert post_form(other, register, "/register", email=f"other-{time.monotonic_ns()}@example.com",
                         display_name="Other", password="correct-horse-battery",
                         confirm="correct-horse-battery").status_code == 302
        assert other.get(site.url(f"/receipts/{number}.pdf"), timeout=TIMEOUT).status_code == 404
        assert other.get(site.url(f"/receipts/{number}"), timeout=TIMEOUT).status_code == 404

        # The callback again under a new notification id, signed as Alipay signs it.
        [(out_trade_no, amount_fen, trade_no)] = database_rows(
            site, "SELECT a.out_trade_no, a.amount_fen, a.channel_trade_no FROM payment_attempts a"
            " JOIN orders o ON o.id = a.order_id WHERE o.order_no = :order_no", order_no=order_no)
        body = signed_body({**notification_fields(out_trade_no, amount_fen, notify_id="e2e-again"),
                            "trade_no": trade_no})
        again = stranger.post(site.url("/notify/alipay"), data=body, timeout=TIMEOUT,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert again.text == "success"
        deadline = time.monotonic() + WITHIN_SECONDS
        while database_rows(site, "SELECT status FROM notification_inbox WHERE dedupe_key LIKE '%e2e-again%'") \
                != [("processed",)]:
            assert time.monotonic() < deadline, "the second notification was not processed"
            time.sleep(0.2)
        deliveries = database_rows(site, "SELECT SUM(deliveries) FROM notification_inbox"
                                   " WHERE out_trade_no = :out_trade_no", out_trade_no=out_trade_no)
        assert deliveries[0][0] >= 3  # twice by the fault, once more by us
    assert database_rows(site, "SELECT COUNT(*) FROM receipts r JOIN orders o ON o.id = r.order_id"
                         " WHERE o.order_no = :order_no", order_no=order_no) == [(1,)]


def test_a_refund_yields_a_refund_receipt(live_site: LiveSite) -> None:
    site = live_site
    site.flask("users", "create", "--email", SUPPORT_EMAIL, "--role", "support",
               "--name", "Sam Support", "--password", SUPPORT_PASSWORD)
    with requests.Session() as browser, requests.Session() as support:
        order_no, total_fen = paid_receipt(site, browser, "wechat")
        ask_for_refund(site, browser, order_no)
        log_in(site, support, SUPPORT_EMAIL, SUPPORT_PASSWORD)
        approve_refund(site, support, order_no)
        wait_until_refunded(site, browser, order_no)

        payment_no, refund_no = receipt_links(site, browser, order_no)
        assert payment_no.startswith("P") and refund_no.startswith("R")
        page = browser.get(site.url(f"/receipts/{refund_no}"), timeout=TIMEOUT)
        text, signature = pre_text(page, "receipt-json"), pre_text(page, "receipt-signature").strip()
        fields = json.loads(text)
        assert (fields["kind"], fields["order_no"], fields["amount_fen"]) == ("refund", order_no, total_fen)
        assert fields["channel"] == "wechat" and fields["refunded_at"].endswith("+08:00")
        public_pem = requests.get(site.url("/receipts/public-key.pem"), timeout=TIMEOUT).content
        assert verifies_independently(text, signature, public_pem)
        assert support.get(site.url(f"/receipts/{refund_no}.pdf"), timeout=TIMEOUT).status_code == 200
        with requests.Session() as stranger:
            verdict, _ = check_on_verify_page(site, stranger, text, signature)
            assert verdict == "true:"
