"""Instructor earnings in the back office: commission rules, co-authors, adjustments,
payouts and statements, through the admin URLs and down to the ledger and audit log."""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.catalog.models import Course
from app.earnings import adjustments, payouts, rules
from app.earnings.bank_accounts import save_bank_account
from app.earnings.models import CommissionRule, Payout
from app.earnings.statements import close_statement
from app.earnings.summary import summary_of
from app.extensions import db
from app.jobs.periodic import tick
from app.ledger import accounts
from app.ledger.models import JournalEntry
from app.ledger.services import balance
from tests.admin.conftest import STAFF_EMAILS, audit_rows, buy
from tests.conftest import Clock
from tests.helpers import make_course

Clients = Callable[[str], FlaskClient]

ACCOUNT_NUMBER = "6222020200112233445"
MASKED = "•••• 3445"
# The test clock starts at 2026-11-20 02:00 UTC, 10:00 in Beijing.
FUTURE_RULE = {"scope": "instructor", "course_id": "", "percent": "65", "effective_from": "2026-12-01T00:00",
               "reason": "New contract from December"}


def make_instructor(app: Flask, slug: str) -> tuple[int, int]:
    """A course with its own instructor (rate 70 % from now); returns (instructor, course) ids."""
    with app.app_context():
        course_id = make_course(10000, slug=slug)
        return db.session.get(Course, course_id).instructor_id, course_id


def rule_rows(app: Flask) -> list[tuple[int | None, int | None, int, datetime, datetime | None]]:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            select(CommissionRule.instructor_id, CommissionRule.course_id, CommissionRule.rate_bps,
                   CommissionRule.effective_from, CommissionRule.withdrawn_at).order_by(CommissionRule.id))]


def last_audit(app: Flask, action: str) -> AuditEntry:
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id.desc()))
        assert entry is not None, action
        db.session.expunge(entry)
        return entry


def add_future_rule(app: Flask, instructor_id: int, staff_id: int) -> int:
    with app.app_context():
        rule_id = rules.add_rule(6000, datetime(2026, 12, 1), staff_id, "December rate", instructor_id=instructor_id)
        db.session.commit()
        return rule_id


# --- Commission rules --------------------------------------------------------------------

def test_finance_adds_a_future_rule_and_it_is_audited(app: Flask, client_as: Clients, staff: dict[str, int]) -> None:
    instructor_id, _ = make_instructor(app, "ruled")
    finance = client_as("finance")
    form = finance.get("/admin/commission_rule/new/")
    assert form.status_code == 200
    assert "Instructor share, in percent" in form.text
    assert 'value="2026-11-20T10:00"' in form.text  # defaults to now, in Beijing time
    response = finance.post("/admin/commission_rule/new/", data={**FUTURE_RULE, "instructor_id": str(instructor_id)})
    assert response.status_code == 302, response.text
    # Beijing midnight of 1 December is 16:00 UTC the day before.
    assert rule_rows(app)[-1] == (instructor_id, None, 6500, datetime(2026, 11, 30, 16), None)
    entry = last_audit(app, "commission_rule.add")
    assert (entry.actor_email, entry.reason) == (STAFF_EMAILS["finance"], "New contract from December")
    assert json.loads(entry.after)["rate_bps"] == 6500
    listing = finance.get("/admin/commission_rule/").text
    assert "65.00 %" in listing and "Instructor: Teacher ruled" in listing and "scheduled" in listing
    assert "2026-12-01 00:00" in listing


def test_a_course_rule_in_the_current_minute_takes_effect_now(app: Flask, client_as: Clients,
                                                               clock: Clock) -> None:
    _, course_id = make_instructor(app, "override")
    data = {**FUTURE_RULE, "scope": "course", "instructor_id": "", "course_id": str(course_id),
            "percent": "72.5", "effective_from": "2026-11-20T10:00"}
    assert client_as("admin").post("/admin/commission_rule/new/", data=data).status_code == 302
    assert rule_rows(app)[-1] == (None, course_id, 7250, clock.current, None)
    with app.app_context():
        assert rules.rate_for(db.session.get(Course, course_id), clock.current) == 7250


def test_a_rule_dated_in_the_past_is_refused_and_nothing_is_stored(app: Flask, client_as: Clients) -> None:
    instructor_id, _ = make_instructor(app, "late")
    before = rule_rows(app)
    response = client_as("finance").post("/admin/commission_rule/new/", data={
        **FUTURE_RULE, "instructor_id": str(instructor_id), "effective_from": "2026-11-20T09:59"})
    assert response.status_code == 200
    assert "orders already placed keep their rate" in response.text
    assert rule_rows(app) == before
    assert audit_rows(app, "commission_rule") == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"percent": "65.125"}, "Use at most two decimals."),
    ({"percent": "101"}, "Number must be between 0 and 100"),
    ({"instructor_id": ""}, "Choose the instructor."),
    ({"scope": "course"}, "Choose the course."),
    ({"reason": ""}, "Please give a reason."),
])
def test_an_invalid_rule_is_refused(app: Flask, client_as: Clients, changes: dict[str, str], message: str) -> None:
    instructor_id, _ = make_instructor(app, "invalid")
    before = rule_rows(app)
    response = client_as("finance").post("/admin/commission_rule/new/",
                                         data={**FUTURE_RULE, "instructor_id": str(instructor_id), **changes})
    assert message in response.text
    assert rule_rows(app) == before


def test_support_sees_the_rules_but_cannot_add_one(app: Flask, client_as: Clients) -> None:
    instructor_id, _ = make_instructor(app, "supported")
    before = rule_rows(app)
    support = client_as("support")
    listing = support.get("/admin/commission_rule/")
    assert listing.status_code == 200 and "70.00 %" in listing.text
    assert "/admin/commission_rule/new/" not in listing.text
    assert support.get("/admin/commission_rule/new/").status_code == 403
    response = support.post("/admin/commission_rule/new/", data={**FUTURE_RULE, "instructor_id": str(instructor_id)})
    assert response.status_code == 403
    assert rule_rows(app) == before
    assert audit_rows(app, "commission_rule") == []


def test_a_scheduled_rule_is_withdrawn_and_one_in_force_is_not(app: Flask, client_as: Clients,
                                                                staff: dict[str, int]) -> None:
    instructor_id, _ = make_instructor(app, "withdrawn")
    with app.app_context():  # make_course's rule, in force from the moment it was made
        in_force = db.session.scalar(select(CommissionRule.id).where(CommissionRule.instructor_id == instructor_id))
    scheduled = add_future_rule(app, instructor_id, staff["finance"])
    finance = client_as("finance")
    page = finance.get(f"/admin/commission_rule/{scheduled}/")
    assert "/withdraw" in page.text and "scheduled" in page.text
    assert client_as("support").post(f"/admin/commission_rule/{scheduled}/withdraw",
                                     data={"reason": "no"}).status_code == 403

    response = finance.post(f"/admin/commission_rule/{scheduled}/withdraw", data={"reason": "Contract fell through"})
    assert response.status_code == 302
    assert rule_rows(app)[-1][4] is not None
    assert ("commission_rule.withdraw", STAFF_EMAILS["finance"], "Contract fell through") in audit_rows(app)

    assert "/withdraw" not in finance.get(f"/admin/commission_rule/{in_force}/").text
    refused = finance.post(f"/admin/commission_rule/{in_force}/withdraw", data={"reason": "Try anyway"},
                           follow_redirects=True)
    assert "This rule has taken effect" in refused.text
    assert rule_rows(app)[0][4] is None
    assert [row for row in audit_rows(app) if row[0] == "commission_rule.withdraw"] == [
        ("commission_rule.withdraw", STAFF_EMAILS["finance"], "Contract fell through")]


# --- Co-authors --------------------------------------------------------------------------

def test_finance_sets_co_authors_and_it_is_audited(app: Flask, client_as: Clients) -> None:
    lead, course_id = make_instructor(app, "lead")
    partner, _ = make_instructor(app, "partner")
    finance = client_as("finance")
    page = finance.get(f"/admin/course/{course_id}/")
    assert page.status_code == 200 and f"{lead}: 1 (Teacher lead)" in page.text
    response = finance.post(f"/admin/course/{course_id}/authors",
                            data={"authors": f"{lead}: 2 (Teacher lead)\n\n{partner}：1", "reason": "Co-written"})
    assert response.status_code == 302
    with app.app_context():
        assert rules.authors_of(db.session.get(Course, course_id)) == [(lead, 2), (partner, 1)]
    entry = last_audit(app, "course.authors")
    assert (entry.actor_email, entry.reason) == (STAFF_EMAILS["finance"], "Co-written")
    assert json.loads(entry.before) == {"authors": [[lead, 1]]}
    assert json.loads(entry.after) == {"authors": [[lead, 2], [partner, 1]]}
    assert "Teacher partner" in finance.get(f"/admin/course/{course_id}/").text


@pytest.mark.parametrize(("authors", "message"), [
    ("{lead} - 2", "Line 1: write “instructor id: weight”"),
    ("{partner}: 1", "The course&#39;s own instructor must stay an author."),
    ("{lead}: 1\n{lead}: 2", "Each instructor appears once."),
    ("{lead}: 0", "Weights are whole numbers from 1 to 10000."),
    ("{lead}: 1\n999999: 1", "No such instructor."),
])
def test_invalid_co_authors_change_nothing(app: Flask, client_as: Clients, authors: str, message: str) -> None:
    lead, course_id = make_instructor(app, "lead")
    partner, _ = make_instructor(app, "partner")
    response = client_as("admin").post(f"/admin/course/{course_id}/authors", follow_redirects=True,
                                       data={"authors": authors.format(lead=lead, partner=partner), "reason": "try"})
    assert message in response.text
    with app.app_context():
        assert rules.authors_of(db.session.get(Course, course_id)) == [(lead, 1)]
    assert audit_rows(app, "course") == []


def test_support_cannot_set_co_authors(app: Flask, client_as: Clients) -> None:
    lead, course_id = make_instructor(app, "lead")
    support = client_as("support")
    assert "/authors" not in support.get(f"/admin/course/{course_id}/").text
    assert support.post(f"/admin/course/{course_id}/authors",
                        data={"authors": f"{lead}: 1", "reason": "x"}).status_code == 403


# --- Adjustments and the instructor page ------------------------------------------------------

def test_finance_posts_an_adjustment_that_is_audited_and_shown(app: Flask, client_as: Clients) -> None:
    instructor_id, _ = make_instructor(app, "adjusted")
    finance = client_as("finance")
    bonus = {"amount_yuan": "150.00", "reason": "Bonus for the November launch", "request_key": uuid.uuid4().hex}
    response = finance.post(f"/admin/instructor/{instructor_id}/adjust", data=bonus)
    assert response.status_code == 302
    # The same form sent again (a double click, a resubmitted page) books nothing more.
    again = finance.post(f"/admin/instructor/{instructor_id}/adjust", data=bonus, follow_redirects=True)
    assert "already booked" in again.text
    response = finance.post(f"/admin/instructor/{instructor_id}/adjust",
                            data={"amount_yuan": "-20.50", "reason": "Duplicate bonus",
                                  "request_key": uuid.uuid4().hex})
    assert response.status_code == 302
    with app.app_context():
        assert summary_of(instructor_id).available_fen == 12950
    entry = last_audit(app, "earnings.adjust")
    assert (entry.actor_email, entry.reason, entry.target_id) == (
        STAFF_EMAILS["finance"], "Duplicate bonus", str(instructor_id))
    assert json.loads(entry.after)["amount_fen"] == -2050
    page = finance.get(response.headers["Location"]).text
    assert "Adjustment of ¥-20.50 booked" in page
    assert re.search(r'id="available">¥129\.50<', page)
    assert "Bonus for the November launch" in page and "Duplicate bonus" in page


@pytest.mark.parametrize(("amount", "message"), [
    ("abc", "Enter signed yuan"), ("0", "non-zero amount"), ("", "Please give the amount."),
])
def test_an_invalid_adjustment_changes_nothing(app: Flask, client_as: Clients, amount: str, message: str) -> None:
    instructor_id, _ = make_instructor(app, "unadjusted")
    response = client_as("finance").post(f"/admin/instructor/{instructor_id}/adjust", follow_redirects=True,
                                         data={"amount_yuan": amount, "reason": "try",
                                               "request_key": uuid.uuid4().hex})
    assert message in response.text
    with app.app_context():
        assert summary_of(instructor_id).available_fen == 0
    assert audit_rows(app, "instructor") == []


def test_support_sees_the_masked_account_and_balances_but_cannot_adjust(
    app: Flask, client_as: Clients, staff: dict[str, int]
) -> None:
    instructor_id, _ = make_instructor(app, "masked")
    with app.app_context():
        save_bank_account(instructor_id, "Lin Xiao", "ICBC Beijing", ACCOUNT_NUMBER, staff["admin"])
        db.session.commit()
    support = client_as("support")
    page = support.get(f"/admin/instructor/{instructor_id}/").text
    assert MASKED in page and ACCOUNT_NUMBER not in page
    assert re.search(r'id="available">¥0\.00<', page)
    assert "/adjust" not in page and 'id="instructor-payouts"' not in page
    listing = support.get("/admin/instructor/").text
    assert MASKED in listing and ACCOUNT_NUMBER not in listing
    assert support.post(f"/admin/instructor/{instructor_id}/adjust",
                        data={"amount_yuan": "10", "reason": "x"}).status_code == 403
    assert "/adjust" in client_as("finance").get(f"/admin/instructor/{instructor_id}/").text


# --- Payouts -------------------------------------------------------------------------------------

def test_the_full_payout_flow(app: Flask, client_as: Clients, learner: int, staff: dict[str, int],
                              clock: Clock) -> None:
    order = buy(app, client_as("learner"))  # ¥100.00 at 70 %: ¥70.00 pending for its instructor
    with app.app_context():
        instructor_id = db.session.get(Course, order.course_ids[0]).instructor_id
        save_bank_account(instructor_id, "Lin Xiao", "ICBC Beijing", ACCOUNT_NUMBER, staff["admin"])
        db.session.commit()
    unbanked, _ = make_instructor(app, "unbanked")
    with app.app_context():
        adjustments.post_adjustment(unbanked, 8000, "owed", staff["finance"], uuid.uuid4().hex)
        db.session.commit()
    clock.advance(days=app.config["REFUND_WINDOW_DAYS"] + 1)
    with app.app_context():
        tick()  # releases the sale's share once its refund window has closed
        assert summary_of(instructor_id).available_fen == 7000

    finance = client_as("finance")
    index = finance.get("/admin/payout/")
    assert index.status_code == 200
    assert 'value="2026-10"' in index.text and 'value="100.00"' in index.text  # last month; PAYOUT_MINIMUM_FEN
    created = finance.post("/admin/payout/batches", data={"period": "2026-11", "minimum_yuan": "50"})
    assert created.status_code == 302
    with app.app_context():
        payout = db.session.scalar(select(Payout))
        payout_id, batch_id = payout.id, payout.batch_id
        assert (payout.instructor_id, payout.amount_fen, payout.status) == (instructor_id, 7000, "pending")
        assert balance(accounts.PAYOUT_CLEARING) == -7000
    assert created.headers["Location"] == f"/admin/payout/{batch_id}/"
    batch_page = finance.get(created.headers["Location"]).text
    assert "1 payout(s), ¥70.00 in total" in batch_page
    assert "Skipped for lack of a bank account: Teacher unbanked." in batch_page
    for page in (batch_page, finance.get("/admin/payout/").text):
        assert MASKED in page and ACCOUNT_NUMBER not in page
    assert re.search(r'<input type="hidden" name="csrf_token" value="[^"]+">', batch_page)

    export = finance.post(f"/admin/payout/{batch_id}/bank-file")
    assert export.status_code == 200
    assert export.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert export.headers["Content-Disposition"] == f'attachment; filename="payouts-{batch_id}.csv"'
    assert export.headers["Cache-Control"] == "no-store"
    assert export.data.startswith(b"\xef\xbb\xbf")
    assert f"{payout_id},Lin Xiao,ICBC Beijing,{ACCOUNT_NUMBER},70.00,CNY" in export.data.decode("utf-8-sig")
    assert last_audit(app, "payout_batch.export").actor_email == STAFF_EMAILS["finance"]
    assert ACCOUNT_NUMBER not in finance.get(f"/admin/payout/{batch_id}/").text
    # A second file would pay every transfer again: only a re-issue with a reason.
    second = finance.post(f"/admin/payout/{batch_id}/bank-file", follow_redirects=True)
    assert "pays every transfer twice" in second.text and ACCOUNT_NUMBER not in second.text
    reissued = finance.post(f"/admin/payout/{batch_id}/bank-file", data={"reason": "The bank lost the upload"})
    assert reissued.status_code == 200 and ACCOUNT_NUMBER in reissued.data.decode("utf-8-sig")
    assert last_audit(app, "payout_batch.reissue").reason == "The bank lost the upload"

    paid = finance.post(f"/admin/payout/payouts/{payout_id}/paid", data={"bank_reference": "ICBC-20261128-0001"})
    assert paid.headers["Location"] == f"/admin/payout/{batch_id}/"
    with app.app_context():
        assert balance(accounts.PAYOUT_CLEARING) == 0
        summary = summary_of(instructor_id)
        assert (summary.available_fen, summary.in_transit_fen, summary.paid_out_fen) == (0, 0, 7000)
        assert db.session.get(Payout, payout_id).bank_reference == "ICBC-20261128-0001"
    assert ("payout.paid", STAFF_EMAILS["finance"], "bank reference ICBC-20261128-0001") in audit_rows(app, "payout")

    again = finance.post(f"/admin/payout/payouts/{payout_id}/paid", data={"bank_reference": "ICBC-AGAIN"},
                         follow_redirects=True)
    assert "Only a pending payout can be marked paid." in again.text
    with app.app_context():
        assert db.session.get(Payout, payout_id).bank_reference == "ICBC-20261128-0001"
        assert db.session.scalar(select(func.count()).where(JournalEntry.kind == "payout_paid")) == 1
        assert balance(accounts.PAYOUT_CLEARING) == 0


def make_batch(app: Flask, staff: dict[str, int], amount_fen: int = 20000) -> tuple[int, int, int]:
    """An instructor owed ``amount_fen`` with a bank account, and a batch paying them:
    (instructor, batch, payout) ids."""
    instructor_id, _ = make_instructor(app, "batched")
    with app.app_context():
        save_bank_account(instructor_id, "Lin Xiao", "ICBC Beijing", ACCOUNT_NUMBER, staff["admin"])
        adjustments.post_adjustment(instructor_id, amount_fen, "owed", staff["finance"], uuid.uuid4().hex)
        result = payouts.create_batch("2026-10", 10000, staff["finance"])
        db.session.commit()
        payout_id = db.session.scalar(select(Payout.id).where(Payout.batch_id == result.batch_id))
        return instructor_id, result.batch_id, payout_id


def test_a_returned_transfer_goes_back_to_available(app: Flask, client_as: Clients, staff: dict[str, int]) -> None:
    instructor_id, batch_id, payout_id = make_batch(app, staff)
    admin = client_as("admin")
    refused = admin.post(f"/admin/payout/payouts/{payout_id}/failed", data={"reason": " "}, follow_redirects=True)
    assert "Please give the reason the bank returned the transfer." in refused.text
    response = admin.post(f"/admin/payout/payouts/{payout_id}/failed", data={"reason": "Account closed"})
    assert response.headers["Location"] == f"/admin/payout/{batch_id}/"
    with app.app_context():
        assert db.session.get(Payout, payout_id).status == "failed"
        assert balance(accounts.PAYOUT_CLEARING) == 0
        assert summary_of(instructor_id).available_fen == 20000
    assert ("payout.failed", STAFF_EMAILS["admin"], "Account closed") in audit_rows(app, "payout")
    # Nothing pending is left to send to the bank: the file has its header and no row.
    export = admin.post(f"/admin/payout/{batch_id}/bank-file")
    assert export.status_code == 200
    assert export.data.decode("utf-8-sig").splitlines() == [",".join(payouts.EXPORT_HEADER)]


def test_a_batch_with_nothing_to_pay_is_refused(app: Flask, client_as: Clients) -> None:
    make_instructor(app, "owed-nothing")
    response = client_as("finance").post("/admin/payout/batches", data={"period": "2026-10", "minimum_yuan": "100"})
    assert response.status_code == 200
    assert "No instructor with a bank account has an available balance of at least ¥100.00." in response.text
    with app.app_context():
        assert db.session.scalar(select(func.count(Payout.id))) == 0
    invalid = client_as("finance").post("/admin/payout/batches", data={"period": "2026-13", "minimum_yuan": "1,00"})
    assert "A month such as 2026-10." in invalid.text


def test_support_gets_403_on_every_payout_url(app: Flask, client_as: Clients, staff: dict[str, int]) -> None:
    _, batch_id, payout_id = make_batch(app, staff)
    support = client_as("support")
    urls = [("GET", "/admin/payout/"), ("GET", f"/admin/payout/{batch_id}/"),
            ("POST", "/admin/payout/batches"), ("POST", f"/admin/payout/{batch_id}/bank-file"),
            ("POST", f"/admin/payout/payouts/{payout_id}/paid"), ("POST", f"/admin/payout/payouts/{payout_id}/failed")]
    payout_rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("payout.")
                    and rule.endpoint != "payout.static"]
    assert len(payout_rules) == len(urls)  # every payout route is in the list
    data = {"period": "2026-10", "minimum_yuan": "1", "bank_reference": "X", "reason": "x"}
    for method, url in urls:
        assert support.open(url, method=method, data=data).status_code == 403, url
    assert "/admin/payout/" not in support.get("/admin/").text  # not in the menu either
    with app.app_context():
        assert db.session.get(Payout, payout_id).status == "pending"
        assert db.session.scalar(select(func.count()).where(AuditEntry.action == "payout_batch.export")) == 0


# --- Statements -----------------------------------------------------------------------------------

def test_finance_downloads_a_closed_statement(app: Flask, client_as: Clients, staff: dict[str, int],
                                              clock: Clock) -> None:
    instructor_id, _ = make_instructor(app, "stated")
    today = clock.current
    clock.current = datetime(2026, 10, 15, 4)
    with app.app_context():
        adjustments.post_adjustment(instructor_id, 12345, "October correction", staff["finance"], uuid.uuid4().hex)
        db.session.commit()
    clock.current = today
    with app.app_context():
        statement_id = close_statement(instructor_id, "2026-10").id
        db.session.commit()
    finance = client_as("finance")
    listing = finance.get("/admin/statement/").text
    assert "2026-10" in listing and "Teacher stated" in listing and "¥123.45" in listing
    assert f"/admin/statement/{statement_id}/csv" in listing and f"/admin/statement/{statement_id}/pdf" in listing

    csv_file = finance.get(f"/admin/statement/{statement_id}/csv")
    assert csv_file.status_code == 200
    assert csv_file.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert csv_file.headers["Content-Disposition"] == f'attachment; filename="statement-{instructor_id}-2026-10.csv"'
    assert csv_file.data.startswith(b"\xef\xbb\xbf")
    assert "October correction" in csv_file.data.decode("utf-8-sig")
    pdf_file = finance.get(f"/admin/statement/{statement_id}/pdf")
    assert pdf_file.status_code == 200 and pdf_file.headers["Content-Type"] == "application/pdf"
    assert pdf_file.data.startswith(b"%PDF")
    assert pdf_file.headers["Cache-Control"] == "no-store"

    support = client_as("support")
    for url in ("/admin/statement/", f"/admin/statement/{statement_id}/csv", f"/admin/statement/{statement_id}/pdf"):
        assert support.get(url).status_code == 403, url
