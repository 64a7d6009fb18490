"""The instructor's pages: earnings, statements (page, CSV, PDF) and the payout account.

Every URL serves only the logged-in instructor's own figures; there is no instructor id
in any URL, so nobody can ask for someone else's.
"""
from __future__ import annotations

import re
from typing import Iterable

from babel.dates import get_month_names
from flask import (
    Blueprint, Response, abort, current_app, flash, redirect, render_template, request, stream_with_context,
    url_for,
)
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy import select

from app.catalog.models import Instructor
from app.earnings.bank_accounts import BankAccountError, account_of, masked_number, save_bank_account
from app.earnings.chart import ChartWords, monthly_earnings_svg
from app.earnings.documents import StatementDocument, StatementRow
from app.earnings.forms import BankAccountForm
from app.earnings.models import Statement
from app.earnings.periods import parse_period, period_of
from app.earnings.payouts import payouts_of
from app.earnings.rules import RULE_TEXT
from app.earnings.statement_downloads import statement_csv_stream, statement_pdf_file
from app.earnings.statement_files import statement_csv_chunks, statement_pdf
from app.earnings.statements import (
    document_page, find_statement, open_document, statements_of, stored_page,
)
from app.earnings.summary import english_titles, monthly_earnings, recent_activity, summary_of
from app.extensions import db
from app.i18n import current_language
from app.timeutil import now

bp = Blueprint("earnings", __name__, url_prefix="/earnings")


def _instructor() -> Instructor:
    """The instructor record of the logged-in user, or 403 for anyone else."""
    if current_user.role != "instructor":
        abort(403)
    instructor = db.session.scalar(select(Instructor).where(Instructor.user_id == current_user.id))
    if instructor is None:
        abort(403)
    return instructor


def _chart_words() -> ChartWords:
    """The chart's words in the reader's language (the chart itself knows no Flask)."""
    months = get_month_names("abbreviated", "stand-alone", locale=get_locale())
    return ChartWords(
        month_labels=tuple(months[number] for number in range(1, 13)),
        no_earnings=_("No earnings yet."),
        summary=_("Earnings for %(months)s, %(span)s: total %(total)s; highest %(highest_month)s "
                  "%(highest)s; lowest %(lowest_month)s %(lowest)s."),
        span=_("%(first)s to %(last)s"),
        month_count=lambda count: ngettext("%(num)d month", "%(num)d months", count),
    )


def _course_titles(rows: list[StatementRow]) -> dict[tuple[str, str], str]:
    """Rows name a course as it was sold, in Chinese; in English, by its English title."""
    return english_titles(rows) if current_language() == "en" else {}


@bp.route("/")
@login_required
def index() -> str:
    instructor = _instructor()
    chart = monthly_earnings_svg(monthly_earnings(instructor.id), _("Monthly earnings"), words=_chart_words())
    account = account_of(instructor.id)
    activity = recent_activity(instructor.id)
    return render_template(
        "earnings/index.html",
        instructor=instructor,
        summary=summary_of(instructor.id),
        # Drawn by our own code from numbers, every text in it escaped (app/earnings/chart.py).
        chart=Markup(chart),
        activity=activity,
        course_titles=_course_titles(activity),
        statements=statements_of(instructor.id),
        open_period=period_of(now()),
        payouts=payouts_of(instructor.id)[:12],
        account=account,
        masked_account=masked_number(account.last4) if account else None,
    )


def _closed_or_open(instructor: Instructor, period: str) -> Statement | None:
    """A closed month's stored statement, or None for the month still open; else 404."""
    if parse_period(period) is None:
        abort(404)
    statement = find_statement(instructor.id, period)
    if statement is None and period != period_of(now()):
        abort(404)
    return statement


def _rule_text(document: StatementDocument) -> str:
    """How shares are computed: today's rule in the reader's language; a statement closed
    under other words keeps them."""
    if document.rule_text == RULE_TEXT:
        return _("Share = rate × (line amount − tax), rounded half up to the fen; co-authors split it "
                 "by their agreed weights (largest remainder). Channel fees are borne by the platform.")
    return document.rule_text


# Lines a statement page shows at a time: a busy month prints a hundred thousand, a page
# of them all would be tens of megabytes of HTML. The CSV download has every line.
STATEMENT_PAGE_LINES = 500
# A page number as the pager writes it: ASCII digits only (int() also takes "١٢" or
# " 12"), at most nine (int() raises on a string of thousands of digits).
PAGE_NUMBER = re.compile(r"[1-9][0-9]{0,8}")


def _page_number() -> int:
    """The ``page`` a statement URL asks for, 1 without one; 400 for anything else."""
    asked = request.args.get("page", "1")
    if not PAGE_NUMBER.fullmatch(asked):
        abort(400)
    return int(asked)


@bp.route("/statements/<period>")
@login_required
def statement(period: str) -> str:
    """A statement's header and summary, and its lines a page at a time; 404 past the last page."""
    instructor = _instructor()
    statement = _closed_or_open(instructor, period)
    number = _page_number()
    if statement is not None:
        page = stored_page(statement, number, STATEMENT_PAGE_LINES)
    else:
        page = document_page(open_document(instructor.id), number, STATEMENT_PAGE_LINES)
    if page is None:
        abort(404)
    document = page.document
    return render_template(
        "earnings/statement.html", document=document, page=page, rule_text=_rule_text(document),
        course_titles=_course_titles(list(document.rows)),
    )


def _download(body: bytes | Iterable[bytes], mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/statements/<period>.csv")
@login_required
def statement_csv_download(period: str) -> Response:
    """Streamed: a closed month's lines are read and sent a batch at a time (in the
    request's context, which the reads need); the open month is computed whole here and
    sent in pieces after the request's context, and its transaction, have ended."""
    instructor = _instructor()
    statement = _closed_or_open(instructor, period)
    if statement is not None:
        chunks = stream_with_context(statement_csv_stream(statement))
    else:
        chunks = statement_csv_chunks(open_document(instructor.id))
    return _download(chunks, "text/csv; charset=utf-8", f"statement-{period}.csv")


@bp.route("/statements/<period>.pdf")
@login_required
def statement_pdf_download(period: str) -> Response:
    instructor = _instructor()
    statement = _closed_or_open(instructor, period)
    font_path = current_app.config.get("STATEMENT_FONT_PATH")
    if statement is not None:
        body = statement_pdf_file(statement, font_path)
    else:
        body = statement_pdf(open_document(instructor.id), font_path)
    return _download(body, "application/pdf", f"statement-{period}.pdf")


@bp.route("/bank-account", methods=["GET", "POST"])
@login_required
def bank_account() -> str | Response:
    instructor = _instructor()
    form = BankAccountForm()
    account = account_of(instructor.id)
    if form.is_submitted():
        form.account_number.render_kw = {**(form.account_number.render_kw or {}), "value": ""}
    if form.validate_on_submit():
        if not current_user.check_password(form.password.data or ""):
            form.password.errors = [_("The password is not right.")]
        else:
            try:
                save_bank_account(instructor.id, form.account_holder.data or "", form.bank_name.data or "",
                                  form.account_number.data or "", current_user.id)
            except BankAccountError as error:
                db.session.rollback()
                form.account_number.errors = [error.message]
            else:
                db.session.commit()
                flash(_("Your payout account was saved."), "success")
                return redirect(url_for("earnings.index"))
    elif account is not None and not form.is_submitted():
        form.account_holder.data = account.account_holder
        form.bank_name.data = account.bank_name
    return render_template(
        "earnings/bank_account.html", form=form,
        masked_account=masked_number(account.last4) if account else None,
    )
