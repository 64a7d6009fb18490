"""How the back office and statements grow with history: the seeded database is grown
step by step (`flask bench seed --orders N`), and at each size the admin order list, its
searches and date filter, the big instructor's statement, and the status poll's ratio are
measured again over HTTP against the running gunicorn.
"""
from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

import pyotp
import requests
import sqlalchemy as sa
from flask import Flask

from bench import load
from bench.hot_paths import Results, Row
from bench.stack import Stack

SAMPLES = 15
ADMIN_EMAIL = "load-admin@load.invalid"
ADMIN_PASSWORD = "bench-admin-password-0123"
ANALYTICS_P95_MS = 300.0  # issue 11
ADMIN_P95_MS = 200.0
STATEMENT_SECONDS = 5.0


@dataclass
class Growth:
    """Each measurement's figure at each size, for the growth table."""

    sizes: list[int] = field(default_factory=list)
    figures: dict[str, list[str]] = field(default_factory=dict)

    def record(self, what: str, figure: str) -> None:
        self.figures.setdefault(what, []).append(figure)


def admin_session(app: Flask, stack: Stack) -> requests.Session:
    """An admin signed in with password and second factor, as staff do in a browser; the
    second factor is one of the recovery codes the enrolment hands out (the TOTP code
    the enrolment used may not be used twice)."""
    from app.accounts import mfa
    from app.accounts.services import create_user
    from app.extensions import db

    with app.app_context():
        user_id = create_user(ADMIN_EMAIL, ADMIN_PASSWORD, "Bench Admin", role="admin")
        secret = mfa.offered_secret(user_id)
        recovery = mfa.confirm_enrolment(user_id, pyotp.TOTP(secret).now())
        db.session.commit()
    browser = requests.Session()
    page = browser.get(f"{stack.site_url}/login", timeout=10)
    browser.post(f"{stack.site_url}/login", allow_redirects=False, timeout=10, data={
        "csrf_token": _csrf(page.text), "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    page = browser.get(f"{stack.site_url}/second-factor", timeout=10)
    answer = browser.post(f"{stack.site_url}/second-factor", allow_redirects=False, timeout=10,
                          data={"csrf_token": _csrf(page.text), "code": recovery[0]})
    if answer.status_code != 302 or browser.get(f"{stack.site_url}/admin/", timeout=10).status_code != 200:
        raise RuntimeError("the bench admin could not sign in to /admin")
    return browser


def _csrf(page: str) -> str:
    return html.unescape(re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1))


def p95_ms(browser: requests.Session, url: str, expect: str | None = None) -> float:
    """The 95th percentile of ``SAMPLES`` sequential GETs (after one warm-up), in ms."""
    browser.get(url, timeout=60)
    times = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        answer = browser.get(url, timeout=60)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200 or (expect is not None and expect not in answer.text):
            raise RuntimeError(f"{url} answered {answer.status_code} without {expect!r}")
    return load.Timed(0, times, 0).percentile(95)


def created_between_arg(app: Flask) -> str:
    """The URL name Flask-Admin gives the order list's "created_at between" filter (its
    position among the view's filters, unless the view names them)."""
    from app.checkout.models import Order

    with app.test_request_context():  # noqa: SIM117 - views build their filters in a request
        admin = app.extensions["admin"][0]
        view = next(view for view in admin._views if getattr(view, "model", None) is Order)
        for index, flt in enumerate(view._filters):
            if type(flt).__name__ == "DateTimeBetweenFilter" and flt.column.key == "created_at":
                return view.get_filter_arg(index, flt)
    raise RuntimeError("the order list has no created_at between filter")


def admin_queries(stack: Stack, browser: requests.Session, dataset, between_arg: str) -> dict[str, float]:  # noqa: ANN001
    """p95 of the order list's first page, a search by order number, by e-mail, and a
    one-month date range, each answering with the rows it should; and the payment
    analytics page over that month."""
    from app.timeutil import beijing

    base = f"{stack.site_url}/admin/order/"
    end = dataset.history_end
    start = end - timedelta(days=30)
    return {
        "order list, first page": p95_ms(browser, base, "CC"),
        "search by order number": p95_ms(browser, f"{base}?search={dataset.example_order_no}",
                                         dataset.example_order_no),
        "search by learner e-mail": p95_ms(browser, f"{base}?search={dataset.learner_email}", "CC"),
        "created in a 30-day range": p95_ms(
            browser, f"{base}?flt0_{between_arg}={start:%Y-%m-%d+%H:%M:%S}+to+{end:%Y-%m-%d+%H:%M:%S}",
            "CC"),
        # Issue 11's dashboard over the same month: target < 300 ms.
        "payment analytics, 30 days": p95_ms(
            browser, f"{stack.site_url}/admin/analytics/?first={beijing(start):%Y-%m-%d}&last={beijing(end):%Y-%m-%d}",
            "Payment analytics"),
        "money per day and month, 30 days": p95_ms(
            browser, f"{stack.site_url}/admin/analytics/money?first={beijing(start):%Y-%m-%d}&last={beijing(end):%Y-%m-%d}",
            "Sales, refunds and earnings"),
    }


def statement(app: Flask, stack: Stack, dataset) -> tuple[float, float, int]:  # noqa: ANN001
    """Close the big instructor's busy month (the months before it first, untimed, as
    statements close in order), then download its CSV as the instructor: (closing
    seconds, download seconds, bytes). Afterwards the instructor's statements are
    deleted again (derived rows, no ledger entry refers to them), so that the next size
    closes the same month with its larger history."""
    from app.earnings.models import Statement, StatementEntry, StatementLine
    from app.earnings.statements import close_statement, due_periods
    from app.extensions import db

    instructor_id = dataset.big_instructor_id
    with app.app_context():
        for period in due_periods(instructor_id):
            started = time.perf_counter()
            close_statement(instructor_id, period)
            db.session.commit()
            if period == dataset.big_period:
                closed = time.perf_counter() - started
                break
        else:
            raise RuntimeError(f"{dataset.big_period} was not due for the big instructor")
    instructor = requests.Session()
    page = instructor.get(f"{stack.site_url}/login", timeout=10)
    instructor.post(f"{stack.site_url}/login", allow_redirects=False, timeout=10, data={
        "csrf_token": _csrf(page.text), "email": dataset.big_instructor_email, "password": dataset.password})
    started = time.perf_counter()
    size = 0
    with instructor.get(f"{stack.site_url}/earnings/statements/{dataset.big_period}.csv", stream=True,
                        timeout=120) as answer:
        if answer.status_code != 200:
            raise RuntimeError(f"statement download answered {answer.status_code}")
        for chunk in answer.iter_content(64 * 1024):
            size += len(chunk)
    downloaded = time.perf_counter() - started
    with app.app_context():
        # The statement tables refuse DELETE by trigger (append-only); the seeder's
        # superuser connection sets them aside for this transaction, as for its bulk load.
        db.session.execute(sa.text("SET LOCAL session_replication_role = replica"))
        for model in (StatementLine, StatementEntry, Statement):
            db.session.execute(sa.delete(model).where(model.instructor_id == instructor_id))
        db.session.commit()
    return closed, downloaded, size


def measure_growth(app: Flask, stack: Stack, results: Results, sizes: list[int],
                   poll_ratio: Callable[[], float], progress: Callable[[str], None]) -> Growth:
    """At each size: seed up to it, then measure. ``poll_ratio()`` re-runs the status
    poll against its baseline and returns the ratio."""
    from app.benchdata import bench_dataset

    growth = Growth()
    browser = None
    between_arg = created_between_arg(app)
    for size in sizes:
        progress(f"seeding to {size:,} orders")
        started = time.perf_counter()
        stack.flask("bench", "seed", "--orders", str(size), timeout=3600)
        seeded = time.perf_counter() - started
        stack.analyze()
        with app.app_context():
            dataset = bench_dataset()
        progress(f"measuring at {size:,} orders")
        browser = browser or admin_session(app, stack)
        growth.sizes.append(size)
        growth.record("seeding (s)", f"{seeded:.0f}")
        for what, p95 in admin_queries(stack, browser, dataset, between_arg).items():
            growth.record(f"admin: {what} p95 (ms)", f"{p95:.0f}")
        closed, downloaded, size_bytes = statement(app, stack, dataset)
        growth.record("statement lines", f"{dataset.big_sale_lines + dataset.big_refund_lines:,}")
        growth.record("statement: close month (s)", f"{closed:.1f}")
        growth.record("statement: CSV download (s)", f"{downloaded:.1f} ({size_bytes / 1e6:.1f} MB)")
        growth.record("status poll ratio", f"{poll_ratio():.2f}×")
    last = {what: figures[-1] for what, figures in growth.figures.items()}
    largest = f"{sizes[-1]:,} orders"
    for what in ("order list, first page", "search by order number", "search by learner e-mail",
                 "created in a 30-day range"):
        p95 = float(last[f"admin: {what} p95 (ms)"])
        results.add(Row(f"admin {what} at {largest}", f"p95 {p95:.0f} ms", "< 200 ms", p95 < ADMIN_P95_MS))
    p95 = float(last["admin: payment analytics, 30 days p95 (ms)"])
    results.add(Row(f"payment analytics, 30 days, at {largest}", f"p95 {p95:.0f} ms", "< 300 ms",
                    p95 < ANALYTICS_P95_MS))
    p95 = float(last["admin: money per day and month, 30 days p95 (ms)"])
    results.add(Row(f"money per day and month, 30 days, at {largest}", f"p95 {p95:.0f} ms", "< 300 ms",
                    p95 < ANALYTICS_P95_MS))
    total = float(last["statement: close month (s)"]) + float(last["statement: CSV download (s)"].split()[0])
    results.add(Row(f"statement of {last['statement lines']} lines at {largest}", f"{total:.1f} s",
                    "< 5 s", total < STATEMENT_SECONDS, "closing the month + streaming the CSV"))
    return growth


def print_growth(growth: Growth) -> None:
    print()
    print("| at orders | " + " | ".join(f"{size:,}" for size in growth.sizes) + " |")
    print("|---|" + "---|" * len(growth.sizes))
    for what, figures in growth.figures.items():
        print(f"| {what} | " + " | ".join(figures) + " |")

