"""Journey 4: an instructor logs in, opens their earnings, and downloads last month's
closed statement as CSV and as PDF; the test opens both files and checks their totals
against what was sold.

Last month cannot be lived through the pages today, so a test-side app on the live
site's database, its clock set to last month, makes that month's history through the
services: the instructor joins with a commission rule and three courses on the 2nd, two
learners buy on the 10th (paid as the channels' callbacks would book it,
tests/earnings_helpers.py `sell`), and the shares are released once their refund window
has passed, on the 20th. The operator's own command then closes the month on the live
site (`flask earnings close-statements`), and the rest happens in the browser.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Iterator

import pypdf
import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from app import create_app
from app.accounts.services import create_user
from app.checkout.models import Order
from app.earnings.maturity import due_order_ids, release_order
from app.earnings.periods import period_of, period_start, previous_period
from app.extensions import db
from tests.browser.browsing import Journey, fen_shown
from tests.browser.steps import LEARNER_PASSWORD, log_in
from tests.conftest import Clock, base_config
from tests.e2e.conftest import LiveSite
from tests.e2e.test_live_purchase import COUPON, COUPON_RATE, TAX_RATE
from tests.earnings_helpers import make_course_of, make_instructor, sell

INSTRUCTOR_EMAIL = "zhou-ming@example.com"
INSTRUCTOR_PASSWORD = "instructor-browser-password"
INSTRUCTOR_NAME = "周明 Zhou Ming"
INSTRUCTOR_RATE_BPS = 6500
PRICES_FEN = {"go-concurrency": 19900, "kafka-streams": 29900, "redis-patterns": 24900}
# Two courses in one order with the coupon, one alone.
SALES = ((("go-concurrency", "kafka-streams"), COUPON), (("redis-patterns",), None))
CSV_COLUMNS = 11  # app/earnings/statement_files.py COLUMNS


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, order=True)
class SoldLine:
    order_no: str
    title: str
    amount_fen: int
    tax_fen: int
    share_fen: int


def expected_line(order_no: str, slug: str, coupon: str | None) -> SoldLine:
    """Independently of the app: the price less the coupon, rounded half up, is what the
    instructor's rate applies to; tax comes on top of it."""
    price = Decimal(PRICES_FEN[slug])
    discounted = price * (1 - COUPON_RATE) if coupon else price
    net = half_up(discounted)
    amount = half_up(discounted * (1 + TAX_RATE))
    share = half_up(Decimal(net) * INSTRUCTOR_RATE_BPS / 10000)
    return SoldLine(order_no, f"课程 {slug}", amount, amount - net, share)  # make_course_of's title


@pytest.fixture
def side_app(journey: Journey, keys_dir: Path, tmp_path: Path) -> Iterator[tuple[Flask, Clock]]:
    """An app of the test's own on the live site's database, with a clock it moves."""
    site: LiveSite = journey.site
    clock = Clock()
    config = base_config(site.env["DATABASE_URL"], keys_dir, tmp_path)
    config.update(CLOCK=clock, PUBLIC_BASE_URL=site.base_url, TAX_RATE=Decimal(site.env["TAX_RATE"]))
    app = create_app(config)
    try:
        yield app, clock
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def live_last_month(app: Flask, clock: Clock) -> tuple[str, list[SoldLine]]:
    """Last month's history (see the module's docstring); returns the month and the
    lines sold, as the test expects them."""
    month = previous_period(period_of(datetime.now(timezone.utc).replace(tzinfo=None)))
    day = period_start(month) + timedelta(hours=10)  # 10:00 on the 1st, Beijing time
    lines: list[SoldLine] = []
    with app.app_context():
        clock.current = day + timedelta(days=1)
        user_id = create_user(INSTRUCTOR_EMAIL, INSTRUCTOR_PASSWORD, INSTRUCTOR_NAME, role="instructor")
        instructor_id = make_instructor(INSTRUCTOR_NAME, INSTRUCTOR_RATE_BPS, user_id=user_id)
        course_ids = {slug: make_course_of(instructor_id, price, slug) for slug, price in PRICES_FEN.items()}

        clock.current = day + timedelta(days=9)
        for number, (slugs, coupon) in enumerate(SALES, start=1):
            buyer = create_user(f"buyer-{number}@example.com", LEARNER_PASSWORD, f"Buyer {number}")
            db.session.commit()
            order_id = sell(buyer, [course_ids[slug] for slug in slugs], coupon=coupon)
            order_no = db.session.get(Order, order_id).order_no
            lines.extend(expected_line(order_no, slug, coupon) for slug in slugs)

        clock.current = day + timedelta(days=19)
        for order_id in due_order_ids(100):
            release_order(order_id)
        db.session.commit()
    return month, lines


def signed_fen(text: str) -> int:
    """A CSV amount (yuan, two decimals, signed as the balance moves) in fen."""
    return int(Decimal(text) * 100)


def check_csv(path: Path, month: str, lines: list[SoldLine]) -> None:
    """The sale rows are the lines sold, to the fen; the summary adds them up."""
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "no UTF-8 byte order mark"
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    cells = {cell for row in rows for cell in row}
    assert INSTRUCTOR_NAME in cells and month in cells
    table = [row for row in rows if len(row) == CSV_COLUMNS]
    body = table[1:]  # under the heading
    order_numbers = {line.order_no for line in lines}
    sold = sorted(
        SoldLine(row[2], row[3], signed_fen(row[4]), signed_fen(row[5]), signed_fen(row[9]))
        for row in body if row[2] in order_numbers
    )
    assert sold == sorted(lines)
    sales = sum(line.share_fen for line in lines)
    assert sum(signed_fen(row[9]) for row in body) == sales  # nothing but these sales
    # The summary below the table: sales, refunds, adjustments, payouts, closing balance,
    # of which pending, of which available (everything was released on the 20th).
    last_blank = max(index for index, row in enumerate(rows) if not row)
    summary = [signed_fen(amount) for _, amount in rows[last_blank + 1:]]
    assert summary == [sales, 0, 0, 0, sales, 0, sales]


def check_pdf(path: Path, month: str, lines: list[SoldLine]) -> None:
    """Read back with pypdf, independently of reportlab: every line, in Chinese, with
    its share, and the month's total."""
    raw = path.read_bytes()
    assert raw.startswith(b"%PDF")
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(raw)).pages)
    sales = sum(line.share_fen for line in lines)
    for needed in (INSTRUCTOR_NAME, month, yuan(sales), *(line.order_no for line in lines),
                   *(line.title for line in lines), *(yuan(line.share_fen) for line in lines)):
        assert needed in text, f"{needed!r} is not in the PDF's text:\n{text}"


def yuan(amount_fen: int) -> str:
    return f"{amount_fen // 100}.{amount_fen % 100:02d}"


def download(journey: Journey, page: Page, href: str, filename: str) -> Path:
    with page.expect_download() as started:
        page.locator(f"main a[href$='{href}']").click()
    saved = started.value
    assert saved.suggested_filename == filename
    path = journey.keep(filename)
    saved.save_as(path)
    return path


def test_an_instructor_downloads_last_months_statement_as_csv_and_pdf(
    journey: Journey, side_app: tuple[Flask, Clock]
) -> None:
    month, lines = live_last_month(*side_app)
    closed = journey.site.flask("earnings", "close-statements")
    assert f"closed {month}" in closed.stdout, closed.stdout
    sales = sum(line.share_fen for line in lines)

    instructor = journey.desktop("instructor")
    log_in(journey, instructor, INSTRUCTOR_EMAIL, INSTRUCTOR_PASSWORD)
    instructor.locator("header a[href$='/earnings/']").click()
    instructor.wait_for_url("**/earnings/")
    assert fen_shown(instructor.locator("#available").inner_text()) == sales
    assert fen_shown(instructor.locator("#pending").inner_text()) == 0
    for line in lines:
        expect(instructor.locator("main")).to_contain_text(line.order_no)
    journey.shot(instructor, "earnings")

    instructor.locator(f"ul.statements a[href$='/earnings/statements/{month}']").click()
    instructor.wait_for_url(f"**/earnings/statements/{month}")
    assert fen_shown(instructor.locator("#opening").inner_text()) == 0
    assert fen_shown(instructor.locator("#closing").inner_text()) == sales
    journey.shot(instructor, "statement")

    check_csv(download(journey, instructor, f"/earnings/statements/{month}.csv", f"statement-{month}.csv"),
              month, lines)
    check_pdf(download(journey, instructor, f"/earnings/statements/{month}.pdf", f"statement-{month}.pdf"),
              month, lines)
