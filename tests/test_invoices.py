"""Invoice requests (app/invoices): the tax id's check character, the learner's request
and its refusals, finance's decisions in the back office, and what refunds do to an
invoice before and after it was issued."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Callable

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app import create_app
from app.accounts.services import create_user
from app.audit.models import AuditEntry
from app.extensions import db
from app.invoices import rules
from app.invoices.models import InvoiceRequest
from app.payments.models import Refund
from tests.admin.conftest import PaidOrder, buy
from tests.conftest import base_config
from tests.helpers import login, make_learner

PASSWORD = "staff-password-1"
FINANCE = "fay@example.com"
SUPPORT = "sam@example.com"
LEARNER = "ann@example.com"
OTHER = "bob@example.com"
# Real companies' codes, as printed on their licences: an independent check of the
# check-character algorithm.
REAL_CODES = ("9144030071526726XG", "91330100716105852F", "91110000802100433B")
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
COMPANY = {"title_type": "company", "title": "深圳市腾讯计算机系统有限公司", "tax_id": "9144030071526726xg",
           "email": "finance@example.com"}
PERSONAL = {"title_type": "personal", "title": "Ann", "tax_id": "", "email": LEARNER}


def ofd_package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("OFD.xml", "<ofd:OFD/>")
        package.writestr("Doc_0/Document.xml", "<ofd:Document/>")
    return buffer.getvalue()


# --- the pure rules ----------------------------------------------------------------------


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_credit_codes_pass_the_check(code: str) -> None:
    assert rules.is_valid_credit_code(code)


@pytest.mark.parametrize("code", REAL_CODES)
def test_any_single_changed_character_fails_the_check(code: str) -> None:
    for position in range(rules.CREDIT_CODE_LENGTH):
        for replacement in rules.CREDIT_CODE_ALPHABET:
            if replacement != code[position]:
                changed = code[:position] + replacement + code[position + 1:]
                assert not rules.is_valid_credit_code(changed), changed


@pytest.mark.parametrize("code", [
    "", "9144030071526726X", "9144030071526726XGG",  # lengths
    "9144030071526726IG", "9144030071526726OG",    # letters the code never uses
    "91A4030071526726XG",                           # the division code is digits
])
def test_malformed_credit_codes_are_refused(code: str) -> None:
    assert not rules.is_valid_credit_code(code)


def test_a_typed_tax_id_is_tidied_before_the_check() -> None:
    assert rules.normalize_tax_id(" 9144 0300 7152 6726 xg ") == "9144030071526726XG"


def test_invoice_files_are_recognised_by_content() -> None:
    assert rules.invoice_file_type(PDF) == "pdf"
    assert rules.invoice_file_type(ofd_package()) == "ofd"
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as package:
        package.writestr("readme.txt", "hello")
    assert rules.invoice_file_type(plain_zip.getvalue()) is None
    assert rules.invoice_file_type(b"PK\x03\x04 not really a zip") is None
    assert rules.invoice_file_type(b"<html>%PDF-</html>") is None


def test_the_state_machine_has_no_way_back_from_a_reversal() -> None:
    assert rules.next_invoice_status("requested", "issue") == "issued"
    assert rules.next_invoice_status("issued", "refund") == "red_letter_required"
    assert rules.next_invoice_status("red_letter_required", "reverse") == "reversed"
    for event in ("issue", "reject", "cancel", "refund", "reverse"):
        with pytest.raises(Exception, match="no transition"):
            rules.next_invoice_status("reversed", event)
    with pytest.raises(Exception, match="no transition"):
        rules.next_invoice_status("rejected", "issue")


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def users(app: Flask) -> dict[str, int]:
    with app.app_context():
        ids = {
            "learner": make_learner(LEARNER),
            "other": make_learner(OTHER),
            "finance": create_user(FINANCE, PASSWORD, "Fay", role="finance"),
            "support": create_user(SUPPORT, PASSWORD, "Sam", role="support"),
        }
        db.session.commit()
    return ids


@pytest.fixture
def clients(app: Flask, users: dict[str, int]) -> Callable[[str], FlaskClient]:
    made: dict[str, FlaskClient] = {}

    def client_of(name: str) -> FlaskClient:
        if name not in made:
            client = app.test_client()
            email, password = {"learner": (LEARNER, "correct-horse"), "other": (OTHER, "correct-horse"),
                               "finance": (FINANCE, PASSWORD), "support": (SUPPORT, PASSWORD)}[name]
            login(client, email, password)
            made[name] = client
        return made[name]

    return client_of


def requests_of(app: Flask, order_id: int) -> list[InvoiceRequest]:
    with app.app_context():
        rows = db.session.scalars(select(InvoiceRequest).where(InvoiceRequest.order_id == order_id)
                                  .order_by(InvoiceRequest.id)).all()
        db.session.expunge_all()
        return list(rows)


def ask(client: FlaskClient, order_no: str, form: dict[str, str]):
    return client.post(f"/orders/{order_no}/invoice", data=form, follow_redirects=True)


def issue(client: FlaskClient, request_id: int, number: str = "12345678901234567890", content: bytes = PDF,
          filename: str = "upload.pdf"):
    return client.post(f"/admin/invoice/{request_id}/issue", follow_redirects=True, content_type="multipart/form-data",
                       data={"invoice_number": number, "invoice_file": (io.BytesIO(content), filename)})


def refund_lines(app: Flask, clients: Callable[[str], FlaskClient], order: PaidOrder, count: int | None) -> None:
    """The learner asks for a refund of the first ``count`` lines (None: all), support
    approves it, and the inline job returns the money."""
    from app.checkout.models import Order
    from app.payments import refund_workflow

    with app.app_context():
        lines = [line.id for line in db.session.get(Order, order.order_id).lines]
        refund_id = refund_workflow.request_refund(order.order_id, order.learner_id,
                                                   None if count is None else lines[:count], "changed my mind")
        db.session.commit()
    approved = clients("support").post(f"/admin/refund/{refund_id}/approve", data={"reason": "policy"})
    assert approved.status_code == 302
    with app.app_context():
        assert db.session.get(Refund, refund_id).status == "succeeded"


@pytest.fixture
def paid(app: Flask, users: dict[str, int], clients: Callable[[str], FlaskClient]) -> PaidOrder:
    """Ann's paid order of two courses (¥100 and ¥200)."""
    return buy(app, clients("learner"), prices=(10000, 20000))


# --- the learner's request ---------------------------------------------------------------


def test_a_learner_requests_a_company_invoice_of_a_paid_order(app: Flask, paid: PaidOrder, clients) -> None:
    learner = clients("learner")
    orders = learner.get("/orders").text
    assert f"/orders/{paid.order_no}/invoice" in orders and "Request an invoice" in orders
    form = learner.get(f"/orders/{paid.order_no}/invoice")
    assert form.status_code == 200 and 'name="tax_id"' in form.text and LEARNER in form.text
    page = ask(learner, paid.order_no, COMPANY)
    assert "Your invoice request was sent." in page.text
    [request] = requests_of(app, paid.order_id)
    assert (request.status, request.title_type, request.tax_id, request.amount_fen, request.email) == (
        "requested", "company", "9144030071526726XG", paid.total_fen, "finance@example.com")
    assert f"invoice ¥{paid.total_fen // 100}.00 requested" in learner.get("/orders").text


@pytest.mark.parametrize(("form", "message"), [
    ({**COMPANY, "tax_id": "9144030071526726XA"}, "not a valid unified social credit code"),
    ({**COMPANY, "tax_id": ""}, "not a valid unified social credit code"),
    ({**COMPANY, "title": "   "}, "Please give the invoice title."),
    ({**COMPANY, "title": "公" * 101}, "at most 100 characters"),
    ({**PERSONAL, "tax_id": REAL_CODES[0]}, "A personal invoice has no tax id"),
    ({**PERSONAL, "email": "not-an-address"}, "Please give the e-mail address"),
    ({**PERSONAL, "title_type": "government"}, "Not a valid choice"),
])
def test_a_bad_request_is_refused_with_a_message_and_stores_nothing(
    app: Flask, paid: PaidOrder, clients, form: dict[str, str], message: str
) -> None:
    page = ask(clients("learner"), paid.order_no, form)
    assert page.status_code == 200 and message in page.text
    assert requests_of(app, paid.order_id) == []


def test_someone_elses_order_is_not_found(app: Flask, paid: PaidOrder, clients) -> None:
    other = clients("other")
    assert other.get(f"/orders/{paid.order_no}/invoice").status_code == 404
    assert other.post(f"/orders/{paid.order_no}/invoice", data=PERSONAL).status_code == 404
    assert requests_of(app, paid.order_id) == []


def test_an_unpaid_order_cannot_have_an_invoice(app: Flask, users, clients) -> None:
    from tests.helpers import checkout, make_course

    with app.app_context():
        course_id = make_course(5000, slug="unpaid")
    learner = clients("learner")
    order_no = checkout(learner, [course_id])
    page = learner.get(f"/orders/{order_no}/invoice")
    assert "An invoice can only be requested for a paid order." in page.text and 'name="title"' not in page.text
    refused = ask(learner, order_no, PERSONAL)
    assert "An invoice can only be requested for a paid order." in refused.text
    with app.app_context():
        assert db.session.scalar(select(func.count(InvoiceRequest.id))) == 0


def test_a_second_request_is_refused_until_the_first_is_rejected(app: Flask, paid: PaidOrder, clients) -> None:
    learner = clients("learner")
    ask(learner, paid.order_no, PERSONAL)
    again = ask(learner, paid.order_no, COMPANY)
    assert "An invoice was already requested for this order." in again.text
    [request] = requests_of(app, paid.order_id)

    rejected = clients("finance").post(f"/admin/invoice/{request.id}/reject", data={"reason": "Wrong title"},
                                       follow_redirects=True)
    assert "Rejected." in rejected.text
    assert "invoice request rejected: Wrong title" in learner.get("/orders").text
    assert "Your invoice request was sent." in ask(learner, paid.order_no, COMPANY).text
    assert [r.status for r in requests_of(app, paid.order_id)] == ["rejected", "requested"]


def test_the_database_holds_one_open_request_per_order(app: Flask, paid: PaidOrder, clients) -> None:
    ask(clients("learner"), paid.order_no, PERSONAL)
    with app.app_context():
        db.session.add(InvoiceRequest(order_id=paid.order_id, status="requested", title_type="personal",
                                      title="Ann", email=LEARNER, amount_fen=100, requested_by=paid.learner_id))
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()


def test_racing_requests_of_one_order_store_exactly_one(app: Flask, paid: PaidOrder) -> None:
    """Real threads, each with its own session, released together: the order's row lock
    (and the partial unique index behind it) lets one through; the others are told."""
    from app.invoices import services
    from tests.test_concurrency import run_together

    outcomes: list[str] = []

    def ask_in_thread(index: int) -> None:
        with app.app_context():
            try:
                services.request_invoice(paid.order_id, paid.learner_id, services.InvoiceValues(
                    "personal", f"Ann {index}", "", LEARNER))
                db.session.commit()
                outcomes.append("stored")
            except services.InvoiceError as error:
                db.session.rollback()
                outcomes.append(error.code)
            finally:
                db.session.remove()

    assert run_together(4, ask_in_thread) == []
    assert sorted(outcomes) == ["already_requested"] * 3 + ["stored"]
    assert len(requests_of(app, paid.order_id)) == 1


# --- finance -----------------------------------------------------------------------------


def test_finance_issues_the_invoice_and_the_learner_downloads_it(app: Flask, paid: PaidOrder, clients) -> None:
    learner, finance = clients("learner"), clients("finance")
    ask(learner, paid.order_no, COMPANY)
    [request] = requests_of(app, paid.order_id)
    queue = finance.get("/admin/invoice/?flt0_0=requested")
    assert queue.status_code == 200 and "9144030071526726XG" in queue.text
    detail = finance.get(f"/admin/invoice/{request.id}/")
    assert f"/admin/invoice/{request.id}/issue" in detail.text and 'enctype="multipart/form-data"' in detail.text

    assert "Issued." in issue(finance, request.id, filename="../../etc/passwd.pdf").text
    [issued] = requests_of(app, paid.order_id)
    assert (issued.status, issued.invoice_number, issued.file_type, issued.file_size) == (
        "issued", "12345678901234567890", "pdf", len(PDF))
    with app.app_context():
        [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.target_type == "invoice_request")).all()
        assert (entry.action, entry.actor_email) == ("invoice.issue", FINANCE)

    orders = learner.get("/orders").text
    link = f"/orders/{paid.order_no}/invoices/{request.id}/file"
    assert "invoice 12345678901234567890 issued" in orders and link in orders
    download = learner.get(link)
    assert download.status_code == 200 and download.data == PDF
    assert download.mimetype == "application/pdf"
    assert download.headers["Content-Disposition"] == 'attachment; filename="invoice-12345678901234567890.pdf"'
    assert clients("other").get(link).status_code == 404
    assert finance.get(f"/admin/invoice/{request.id}/file").data == PDF


def test_an_ofd_file_is_accepted(app: Flask, paid: PaidOrder, clients) -> None:
    ask(clients("learner"), paid.order_no, PERSONAL)
    [request] = requests_of(app, paid.order_id)
    assert "Issued." in issue(clients("finance"), request.id, "12345678", ofd_package(), "x.ofd").text
    assert requests_of(app, paid.order_id)[0].file_type == "ofd"


@pytest.mark.parametrize(("number", "content", "message"), [
    ("12345678", b"GIF89a not an invoice", "neither a PDF nor an OFD"),
    ("12345678", b"%PDF-" + b"0" * (5 * 1024 * 1024), "larger than 5 MB"),
    ("1234", PDF, "8 or 20 digits"),
    ("1234567A", PDF, "8 or 20 digits"),
])
def test_a_bad_upload_is_refused_and_changes_nothing(
    app: Flask, paid: PaidOrder, clients, number: str, content: bytes, message: str
) -> None:
    ask(clients("learner"), paid.order_no, PERSONAL)
    [request] = requests_of(app, paid.order_id)
    page = issue(clients("finance"), request.id, number, content)
    assert message in page.text
    [after] = requests_of(app, paid.order_id)
    assert (after.status, after.invoice_number, after.file_type) == ("requested", None, None)
    with app.app_context():
        assert db.session.scalar(select(func.count(AuditEntry.id)).where(
            AuditEntry.target_type == "invoice_request")) == 0


def test_an_invoice_number_is_recorded_once(app: Flask, users, clients) -> None:
    first, second = buy(app, clients("learner")), buy(app, clients("learner"))
    ask(clients("learner"), first.order_no, PERSONAL)
    ask(clients("learner"), second.order_no, PERSONAL)
    [one], [two] = requests_of(app, first.order_id), requests_of(app, second.order_id)
    issue(clients("finance"), one.id, "12345678")
    assert "already recorded" in issue(clients("finance"), two.id, "12345678").text
    assert requests_of(app, second.order_id)[0].status == "requested"


def test_only_finance_and_admin_decide_support_reads(app: Flask, paid: PaidOrder, clients) -> None:
    ask(clients("learner"), paid.order_no, PERSONAL)
    [request] = requests_of(app, paid.order_id)
    support, learner = clients("support"), clients("learner")
    assert support.get(f"/admin/invoice/{request.id}/").status_code == 200
    assert f"/admin/invoice/{request.id}/issue" not in support.get(f"/admin/invoice/{request.id}/").text
    assert issue(support, request.id).status_code == 403
    assert issue(learner, request.id).status_code == 403
    assert learner.post(f"/admin/invoice/{request.id}/reject", data={"reason": "x"}).status_code == 403
    assert learner.get("/admin/invoice/").status_code == 403
    assert requests_of(app, paid.order_id)[0].status == "requested"


# --- refunds -----------------------------------------------------------------------------


def test_a_partial_refund_before_issuing_lowers_the_amount(app: Flask, paid: PaidOrder, clients) -> None:
    ask(clients("learner"), paid.order_no, PERSONAL)
    refund_lines(app, clients, paid, 1)
    [request] = requests_of(app, paid.order_id)
    with app.app_context():
        refunded = db.session.scalar(select(Refund.amount_fen).where(Refund.order_id == paid.order_id))
    assert (request.status, request.amount_fen, request.refunded_fen) == (
        "requested", paid.total_fen - refunded, refunded)


def test_a_full_refund_before_issuing_cancels_the_request(app: Flask, paid: PaidOrder, clients) -> None:
    ask(clients("learner"), paid.order_no, PERSONAL)
    refund_lines(app, clients, paid, None)
    [request] = requests_of(app, paid.order_id)
    assert (request.status, request.amount_fen, request.refunded_fen) == ("cancelled", 0, paid.total_fen)
    assert "An invoice can only be requested for a paid order." in clients("learner").get(
        f"/orders/{paid.order_no}/invoice").text


def test_a_refund_after_issuing_flags_the_invoice_for_red_letter_then_a_new_one_may_be_asked(
    app: Flask, paid: PaidOrder, clients
) -> None:
    learner, finance = clients("learner"), clients("finance")
    ask(learner, paid.order_no, COMPANY)
    [request] = requests_of(app, paid.order_id)
    issue(finance, request.id, "12345678")
    refund_lines(app, clients, paid, 1)
    [flagged] = requests_of(app, paid.order_id)
    with app.app_context():
        refunded = db.session.scalar(select(Refund.amount_fen).where(Refund.order_id == paid.order_id))
    assert (flagged.status, flagged.amount_fen, flagged.refunded_fen) == (
        "red_letter_required", paid.total_fen, refunded)
    assert flagged.red_letter_flagged_at is not None
    # Not until the reversal: the learner still holds the invoice, so no second one.
    assert "already requested" in ask(learner, paid.order_no, PERSONAL).text

    same = finance.post(f"/admin/invoice/{request.id}/red-letter", data={"red_letter_number": "12345678"},
                        follow_redirects=True)
    assert "has a number of its own" in same.text
    assert requests_of(app, paid.order_id)[0].status == "red_letter_required"
    done = finance.post(f"/admin/invoice/{request.id}/red-letter", data={"red_letter_number": "87654321"},
                        follow_redirects=True)
    assert "the invoice is reversed" in done.text
    assert "reversed by red-letter invoice 87654321" in learner.get("/orders").text

    assert "Your invoice request was sent." in ask(learner, paid.order_no, COMPANY).text
    reversed_one, new_one = requests_of(app, paid.order_id)
    assert (reversed_one.status, reversed_one.red_letter_number) == ("reversed", "87654321")
    assert (new_one.status, new_one.amount_fen) == ("requested", paid.total_fen - refunded)


# --- the migration -----------------------------------------------------------------------


def test_the_invoice_migration_downgrades_and_upgrades(keys_dir: Path, tmp_path: Path,
                                                       empty_database_url: str) -> None:
    app = create_app(base_config(empty_database_url, keys_dir, tmp_path))
    runner = app.test_cli_runner()
    seen = []
    for args in (["db", "upgrade"], ["db", "downgrade", "b7e2c9d40a16"], ["db", "upgrade"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, (args, result.output)
        with app.app_context():
            seen.append("invoice_requests" in sa.inspect(db.engine).get_table_names())
            db.engine.dispose()
    assert seen == [True, False, True]
