"""An invoice end to end on a live server, over HTTP only: the learner pays and asks for a
company invoice; finance (signed in with the second factor) records the number and
uploads the PDF in /admin; the learner downloads it; a refund of the order flags it for a
red-letter reversal. On the way, the refusals: an invalid tax id, someone else's order,
an unpaid order, a second request, a file that is not a PDF, and a learner posting
finance's action.
"""
from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urljoin

import pytest
import requests

from tests.e2e.staff import log_in, wait_until_refunded
from tests.e2e.test_live_purchase import (
    TIMEOUT,
    buy_two_courses,
    form_posting_to,
    pay_with_phone,
    post_form,
    wait_until_paid,
)
from tests.e2e.test_live_wechat import database_rows

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveSite

FINANCE_EMAIL = "finance-e2e@example.com"
FINANCE_PASSWORD = "finance-password-123"
TAX_ID = "91330100716105852F"  # a real company's unified social credit code
INVOICE_NUMBER = "26442000000123456789"
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
COMPANY = {"title_type": "company", "title": "阿里巴巴（中国）有限公司", "email": "invoices@example.com"}


def csrf_token(session: requests.Session, site: LiveSite) -> str:
    """The session's CSRF token, read from the log-out form every signed-in page has."""
    page = session.get(site.url("/orders"), timeout=TIMEOUT)
    return form_posting_to(page, "/logout").fields["csrf_token"]


def invoice_rows(site: LiveSite, order_no: str) -> list[tuple]:
    return database_rows(
        site, "SELECT i.id, i.status, i.tax_id, i.amount_fen, i.refunded_fen, i.invoice_number, i.file_type"
        " FROM invoice_requests i JOIN orders o ON o.id = i.order_id WHERE o.order_no = :order_no ORDER BY i.id",
        order_no=order_no,
    )


def upload(session: requests.Session, page: requests.Response, request_id: int, number: str,
           content: bytes, filename: str) -> requests.Response:
    """Finance's issue form, as the browser sends it: multipart, with the file."""
    form = form_posting_to(page, f"/admin/invoice/{request_id}/issue")
    return session.post(
        urljoin(page.url, form.action), data={**form.fields, "invoice_number": number},
        files={"invoice_file": (filename, content, "application/octet-stream")},
        allow_redirects=True, timeout=TIMEOUT,
    )


@pytest.mark.parametrize("live_site", ["inline", "rq"], indirect=True)
def test_an_invoice_is_requested_issued_downloaded_and_flagged_by_a_refund(live_site: LiveSite) -> None:
    site = live_site
    site.flask("users", "create", "--email", FINANCE_EMAIL, "--role", "finance",
               "--name", "Fay Finance", "--password", FINANCE_PASSWORD)
    with requests.Session() as browser, requests.Session() as stranger, requests.Session() as finance:
        purchase = buy_two_courses(site, browser)
        pay_with_phone(site, browser, purchase)
        wait_until_paid(site, browser, purchase.order_no)
        invoice_url = f"/orders/{purchase.order_no}/invoice"
        assert invoice_url in browser.get(site.url("/orders"), timeout=TIMEOUT).text

        # Refused: a tax id whose check character is wrong.
        form = browser.get(site.url(invoice_url), timeout=TIMEOUT)
        assert form.status_code == 200
        bad = post_form(browser, form, invoice_url, **COMPANY, tax_id=TAX_ID[:-1] + "G")
        assert bad.status_code == 200 and "not a valid unified social credit code" in bad.text
        assert invoice_rows(site, purchase.order_no) == []

        # Refused: someone else's order is not there; and their own unpaid order.
        unpaid = buy_two_courses(site, stranger)
        assert stranger.get(site.url(invoice_url), timeout=TIMEOUT).status_code == 404
        stolen = stranger.post(site.url(invoice_url), timeout=TIMEOUT, allow_redirects=False,
                               data={**COMPANY, "tax_id": TAX_ID, "csrf_token": csrf_token(stranger, site)})
        assert stolen.status_code == 404
        unpaid_page = stranger.get(site.url(f"/orders/{unpaid.order_no}/invoice"), timeout=TIMEOUT)
        assert "An invoice can only be requested for a paid order." in unpaid_page.text
        unpaid_post = stranger.post(
            site.url(f"/orders/{unpaid.order_no}/invoice"), timeout=TIMEOUT,
            data={**COMPANY, "tax_id": TAX_ID, "csrf_token": csrf_token(stranger, site)})
        assert "An invoice can only be requested for a paid order." in unpaid_post.text
        assert invoice_rows(site, unpaid.order_no) == [] and invoice_rows(site, purchase.order_no) == []

        # The request, with the tax id as a person might type it.
        asked = post_form(browser, form, invoice_url, **COMPANY, tax_id=" 913301007161 05852f ")
        assert asked.status_code == 302, asked.text
        [(request_id, status, tax_id, amount_fen, _, _, _)] = invoice_rows(site, purchase.order_no)
        assert (status, tax_id, amount_fen) == ("requested", TAX_ID, purchase.total_fen)
        assert "requested" in browser.get(site.url("/orders"), timeout=TIMEOUT).text

        # Refused: a second request of the same order.
        again = browser.post(site.url(invoice_url), timeout=TIMEOUT,
                             data={**COMPANY, "tax_id": TAX_ID, "csrf_token": csrf_token(browser, site)})
        assert "An invoice was already requested for this order." in again.text
        assert len(invoice_rows(site, purchase.order_no)) == 1

        # Refused: the learner posting finance's action.
        forged = browser.post(site.url(f"/admin/invoice/{request_id}/issue"), timeout=TIMEOUT,
                              allow_redirects=False,
                              data={"invoice_number": INVOICE_NUMBER, "csrf_token": csrf_token(browser, site)},
                              files={"invoice_file": ("invoice.pdf", PDF, "application/pdf")})
        assert forged.status_code == 403

        log_in(site, finance, FINANCE_EMAIL, FINANCE_PASSWORD)
        queue = finance.get(site.url("/admin/invoice/?flt0_0=requested"), timeout=TIMEOUT)
        assert queue.status_code == 200 and TAX_ID in queue.text
        detail = finance.get(site.url(f"/admin/invoice/details/?id={request_id}"), timeout=TIMEOUT)
        assert detail.status_code == 200 and TAX_ID in detail.text

        # Refused: a file that is not a PDF (or OFD), whatever its name says.
        wrong = upload(finance, detail, request_id, INVOICE_NUMBER, b"\x89PNG\r\n\x1a\n not a pdf", "invoice.pdf")
        assert "neither a PDF nor an OFD document" in wrong.text
        assert invoice_rows(site, purchase.order_no)[0][1] == "requested"

        issued = upload(finance, detail, request_id, INVOICE_NUMBER, PDF, "scan from the tax platform.pdf")
        assert issued.status_code == 200 and "Issued." in issued.text
        [row] = invoice_rows(site, purchase.order_no)
        assert row[1:] == ("issued", TAX_ID, purchase.total_fen, 0, INVOICE_NUMBER, "pdf")

        orders = browser.get(site.url("/orders"), timeout=TIMEOUT).text
        link = f"/orders/{purchase.order_no}/invoices/{request_id}/file"
        assert f"invoice {INVOICE_NUMBER} issued" in orders and link in orders
        download = browser.get(site.url(link), timeout=TIMEOUT)
        assert download.status_code == 200 and download.content == PDF
        assert download.headers["Content-Type"] == "application/pdf"
        assert f'filename="invoice-{INVOICE_NUMBER}.pdf"' in download.headers["Content-Disposition"]
        assert stranger.get(site.url(link), timeout=TIMEOUT).status_code == 404

        # A refund of the whole order: the invoice must be reversed in red letter.
        refund_page = browser.get(site.url(f"/orders/{purchase.order_no}/refund"), timeout=TIMEOUT)
        refund_asked = post_form(browser, refund_page, f"/orders/{purchase.order_no}/refund",
                                 reason="Bought by mistake")
        assert refund_asked.status_code == 302, refund_asked.text
        [(refund_id,)] = database_rows(
            site, "SELECT r.id FROM refunds r JOIN orders o ON o.id = r.order_id WHERE o.order_no = :order_no",
            order_no=purchase.order_no,
        )
        refund_detail = finance.get(site.url(f"/admin/refund/{refund_id}/"), timeout=TIMEOUT)
        approved = post_form(finance, refund_detail, f"/admin/refund/{refund_id}/approve", reason="Within policy")
        assert approved.status_code == 302, approved.text
        wait_until_refunded(site, browser, purchase.order_no)

        [row] = invoice_rows(site, purchase.order_no)
        assert row[1:5] == ("red_letter_required", TAX_ID, purchase.total_fen, purchase.total_fen)
        assert "is being reversed after a refund" in browser.get(site.url("/orders"), timeout=TIMEOUT).text
        flagged = finance.get(site.url(f"/admin/invoice/{request_id}/"), timeout=TIMEOUT)
        assert f"/admin/invoice/{request_id}/red-letter" in flagged.text

    decisions = database_rows(
        site, "SELECT action, actor_email FROM audit_log WHERE target_type = 'invoice_request'"
        " AND target_id = :request_id ORDER BY id", request_id=str(request_id),
    )
    assert decisions == [("invoice.issue", FINANCE_EMAIL), ("invoice.refund", "system")]
