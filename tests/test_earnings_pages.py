"""The instructor's own pages: earnings, statements as page, CSV and PDF, and the payout
account, each visible to that instructor only."""
from __future__ import annotations

import csv
import io
from datetime import datetime

import pypdf
import pytest
from sqlalchemy import select

from app.accounts.services import create_user
from app.earnings.models import BankAccount
from app.extensions import db
from app.jobs.periodic import tick
from tests.earnings_helpers import make_course_of, make_instructor, sell
from tests.helpers import login

ACCOUNT_NUMBER = "6222020200001234567"


@pytest.fixture
def two_instructors(app, clock):
    """林晓 sold a course in October (closed by November's first run); Bob sold one too."""
    clock.current = datetime(2026, 10, 10, 2, 0)
    with app.app_context():
        lin_user = create_user("lin@example.com", "teacher-password", "林晓", role="instructor")
        bob_user = create_user("bob@example.com", "teacher-password", "Bob", role="instructor")
        learner = create_user("ann@example.com", "correct-horse", "Ann")
        lin = make_instructor("林晓", 7000, user_id=lin_user)
        bob = make_instructor("Bob", 6000, user_id=bob_user)
        lin_order = sell(learner, [make_course_of(lin, 10000, "python")])
        bob_order = sell(learner, [make_course_of(bob, 20000, "design")])
        clock.current = datetime(2026, 11, 5, 2, 0)
        tick()
        from app.checkout.models import Order

        numbers = {name: db.session.get(Order, order_id).order_no
                   for name, order_id in (("lin", lin_order), ("bob", bob_order))}
    return numbers


def test_an_instructor_sees_their_balances_chart_and_sales(app, client, two_instructors):
    login(client, "lin@example.com", "teacher-password")
    page = client.get("/earnings/")
    assert page.status_code == 200
    assert 'id="available">¥70.00' in page.text and "<svg" in page.text
    assert two_instructors["lin"] in page.text
    assert two_instructors["bob"] not in page.text  # another instructor's sale


@pytest.mark.parametrize(("who", "expected"), [(None, 302), ("ann@example.com", 403)])
def test_earnings_pages_are_for_instructors_only(app, client, two_instructors, who, expected):
    if who:
        login(client, who, "correct-horse")
    for path in ("/earnings/", "/earnings/statements/2026-10", "/earnings/statements/2026-10.csv",
                 "/earnings/statements/2026-10.pdf", "/earnings/bank-account"):
        assert client.get(path).status_code == expected, path


def test_an_unknown_or_malformed_period_is_not_found(app, client, two_instructors):
    login(client, "lin@example.com", "teacher-password")
    for period in ("2026-09", "2026-13", "2026-1", "..%2F..", "2026-10'"):
        assert client.get(f"/earnings/statements/{period}.csv").status_code == 404, period


def test_the_csv_opens_in_a_spreadsheet_with_chinese_intact_and_is_byte_identical(app, client, two_instructors):
    login(client, "lin@example.com", "teacher-password")
    first = client.get("/earnings/statements/2026-10.csv")
    assert first.status_code == 200 and first.mimetype == "text/csv"
    assert first.headers["Cache-Control"] == "private, no-store"
    assert first.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(first.data.decode("utf-8-sig"))))
    cells = [cell for row in rows for cell in row]
    assert "林晓" in " ".join(cells) and "课程 python" in cells and two_instructors["lin"] in cells
    assert "70.00" in cells
    assert client.get("/earnings/statements/2026-10.csv").data == first.data


def test_the_pdf_renders_chinese_text(app, client, two_instructors):
    login(client, "lin@example.com", "teacher-password")
    response = client.get("/earnings/statements/2026-10.pdf")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(response.data)).pages)
    assert "林晓" in text and "课程 python" in text and "70.00" in text


def test_the_open_month_is_shown_live(app, client, two_instructors):
    login(client, "lin@example.com", "teacher-password")
    page = client.get("/earnings/statements/2026-11")
    assert page.status_code == 200 and "Open: figures change" in page.text and "Closed" not in page.text


def test_the_payout_account_needs_the_password_is_sealed_and_shown_masked(app, client, two_instructors):
    login(client, "lin@example.com", "teacher-password")
    form = {"account_holder": "林晓", "bank_name": "招商银行 北京分行", "account_number": ACCOUNT_NUMBER}
    wrong = client.post("/earnings/bank-account", data={**form, "password": "guess"})
    assert wrong.status_code == 200 and "password is not right" in wrong.text
    assert ACCOUNT_NUMBER not in wrong.text  # not echoed back into the page
    bad = client.post("/earnings/bank-account", data={**form, "account_number": "１２３４５６７８９",
                                                        "password": "teacher-password"})
    assert "8 to 30 digits" in bad.text
    with app.app_context():
        assert db.session.scalar(select(BankAccount)) is None
    saved = client.post("/earnings/bank-account", data={**form, "password": "teacher-password"})
    assert saved.status_code == 302
    with app.app_context():
        account = db.session.scalar(select(BankAccount))
        assert ACCOUNT_NUMBER not in account.ciphertext and account.last4 == "4567"
    for path in ("/earnings/", "/earnings/bank-account"):
        text = client.get(path).text
        assert "•••• 4567" in text and ACCOUNT_NUMBER not in text


# --- A statement of more lines than a page ------------------------------------------------------


def order_no(position: int) -> str:
    """The order number `bulk_statement` gives the line at ``position``."""
    return f"CC2026100{position:013d}"


def test_a_long_statement_shows_its_lines_a_page_at_a_time(app):
    from app.earnings.views import STATEMENT_PAGE_LINES as PAGE
    from tests.test_statement_streaming import bulk_statement, instructor_client

    total = 2 * PAGE + 3
    bulk_statement(app, total)
    client = instructor_client(app)
    first = client.get("/earnings/statements/2026-10")
    assert first.status_code == 200
    assert order_no(1) in first.text and order_no(PAGE) in first.text and order_no(PAGE + 1) not in first.text
    # The header and the whole statement's summary stay; the whole lies in the download.
    assert "林晓" in first.text and 'id="closing"' in first.text
    assert f"Lines 1 to {PAGE:,} of {total:,}" in first.text
    assert 'href="/earnings/statements/2026-10.csv"' in first.text
    assert 'rel="prev"' not in first.text and "Page 1 of 3" in first.text
    assert 'href="/earnings/statements/2026-10?page=2"' in first.text  # next
    following = client.get("/earnings/statements/2026-10?page=2")
    assert order_no(PAGE) not in following.text and order_no(PAGE + 1) in following.text
    assert order_no(2 * PAGE) in following.text and order_no(2 * PAGE + 1) not in following.text
    assert 'href="/earnings/statements/2026-10?page=1"' in following.text  # previous
    assert 'href="/earnings/statements/2026-10?page=3"' in following.text  # next
    last = client.get("/earnings/statements/2026-10?page=3")
    assert order_no(2 * PAGE + 1) in last.text and order_no(total) in last.text and order_no(2 * PAGE) not in last.text
    assert 'rel="next"' not in last.text and f"of {total:,}" in last.text
    chinese = client.get("/earnings/statements/2026-10?page=3", headers={"Accept-Language": "zh-CN"})
    assert "第 3 页，共 3 页" in chinese.text and "全部明细见下载的 CSV 文件" in chinese.text


@pytest.mark.parametrize(("page", "expected"), [
    ("0", 400), ("-1", 400), ("abc", 400), ("1.5", 400), ("", 400), ("１", 400), (" 2", 400), ("9" * 5000, 400),
    ("2", 404), ("999999999", 404),
])
def test_a_page_that_is_no_page_of_the_statement_is_refused_clearly(app, client, two_instructors, page, expected):
    login(client, "lin@example.com", "teacher-password")
    for period in ("2026-10", "2026-11"):  # closed, and the open month
        response = client.get(f"/earnings/statements/{period}", query_string={"page": page})
        assert response.status_code == expected, (period, page)
        assert "Bad request" in response.text if expected == 400 else "Page not found" in response.text


def test_a_short_statement_is_one_page_without_a_pager(app, client, two_instructors):
    login(client, "lin@example.com", "teacher-password")
    page = client.get("/earnings/statements/2026-10?page=1")
    assert page.status_code == 200 and two_instructors["lin"] in page.text
    assert 'class="pager"' not in page.text and "Lines 1 to" not in page.text


def test_the_open_month_held_whole_is_paged_the_same_way():
    from app.earnings.statements import document_page
    from tests.test_statement_files import long_statement

    document = long_statement(5)
    pages = [document_page(document, number, size=2) for number in (1, 2, 3, 4)]
    assert [page.document.rows for page in pages[:3]] == [document.rows[0:2], document.rows[2:4], document.rows[4:]]
    assert [(page.first_line, page.last_line, page.page_count) for page in pages[:3]] == [(1, 2, 3), (3, 4, 3),
                                                                                          (5, 5, 3)]
    assert pages[3] is None
    assert pages[2].document.closing_fen == document.closing_fen  # the summary is the whole month's
