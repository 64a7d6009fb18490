"""Instructor earnings in the back office, beside the rows they concern: commission
rules, a course's co-authors, an instructor's balances and adjustments, and closed
statements. Payouts have their own page (`app.admin.payout_views`).

Every change is a form that calls one earnings service, which validates it and writes
the audit log; the view commits, or rolls back and flashes the service's message.
"""
from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Callable, Iterable

from flask import Response, abort, current_app, flash, redirect, stream_with_context, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import select

from app.admin.base import CustomDetailsMixin, ReadOnlyModelView, current_role
from app.admin.catalog_views import CourseView, InstructorView, ServiceEditView
from app.admin.formatting import formatters
from app.admin.forms import AdjustmentForm, CommissionRuleForm, CourseAuthorsForm, FormValueError, ReasonForm
from app.admin.permissions import may_view
from app.admin.queries import emails
from app.catalog.models import Course, Instructor
from app.earnings import adjustments, rules
from app.earnings.bank_accounts import account_of, masked_number
from app.earnings.models import CommissionRule, Statement
from app.earnings.payouts import payouts_of
from app.earnings.rules import RuleError
from app.earnings.statement_downloads import statement_csv_stream, statement_pdf_file
from app.earnings.summary import recent_activity, summary_of
from app.errors import ServiceError
from app.extensions import db
from app.money import display_yuan
from app.timeutil import now

RECENT_ACTIVITY = 30


# --- Helpers the earnings pages share ------------------------------------------------

def percent(rate_bps: int) -> str:
    return f"{Decimal(rate_bps) / 100:.2f} %"


def instructor_names(ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = db.session.execute(select(Instructor.id, Instructor.name).where(Instructor.id.in_(wanted)))
    return {row_id: name for row_id, name in rows}


def form_problem(form: FlaskForm) -> str:
    """The first validation error of a submitted form, as "Label: message"."""
    for field in form:
        if field.errors:
            return f"{field.label.text}: {field.errors[0]}"
    return "Please check the form."


def run_service(call: Callable[[], object], done: str, back: Response) -> Response:
    """Call one earnings service; commit and flash ``done``, or roll back and flash why not."""
    try:
        call()
    except ServiceError as error:
        db.session.rollback()
        flash(error.message, "error")
        return back
    db.session.commit()
    flash(done, "success")
    return back


def download(body: bytes | Iterable[bytes], content_type: str, filename: str) -> Response:
    """A file to save, never to keep in a cache: these carry earnings or account numbers."""
    response = Response(body, content_type=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


# --- Commission rules ------------------------------------------------------------------

def rule_scope(rule: CommissionRule) -> str:
    if rule.course_id is not None:
        course = db.session.get(Course, rule.course_id)
        return f"Course: {course.title_zh} / {course.title_en}" if course else f"Course #{rule.course_id}"
    instructor = db.session.get(Instructor, rule.instructor_id)
    return f"Instructor: {instructor.name}" if instructor else f"Instructor #{rule.instructor_id}"


def rule_status(rule: CommissionRule) -> str:
    if rule.withdrawn_at is not None:
        return "withdrawn"
    return "scheduled" if rule.effective_from > now() else "took effect"


def _scope_column(_view: Any, _context: Any, rule: CommissionRule, _name: str) -> str:
    return rule_scope(rule)


def _rate_column(_view: Any, _context: Any, rule: CommissionRule, _name: str) -> str:
    return percent(rule.rate_bps)


def _status_column(_view: Any, _context: Any, rule: CommissionRule, _name: str) -> str:
    return rule_status(rule)


def _scope_choices() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    instructors = [(row_id, f"{name} (#{row_id})") for row_id, name in
                   db.session.execute(select(Instructor.id, Instructor.name).order_by(Instructor.name, Instructor.id))]
    courses = [(row_id, f"{title_zh} / {title_en} (#{row_id})") for row_id, title_zh, title_en in
               db.session.execute(select(Course.id, Course.title_zh, Course.title_en).order_by(Course.id))]
    return instructors, courses


class CommissionRuleView(CustomDetailsMixin, ServiceEditView):
    """Rules are added and, before they take effect, withdrawn; never edited. A new rate
    is a new rule from now or a later moment: orders already placed keep theirs."""

    allow_create = True
    form = CommissionRuleForm
    route_actions = {**ServiceEditView.route_actions, "withdraw": "withdraw"}
    column_list = ("id", "scope", "rate_bps", "effective_from", "status", "reason", "created_by", "withdrawn_at")
    column_labels = {"rate_bps": "Rate", "effective_from": "Effective from (Beijing)", "created_by": "Created by",
                     "withdrawn_at": "Withdrawn at", "instructor_id": "Instructor id", "course_id": "Course id"}
    column_formatters = {
        **formatters(times=("effective_from", "withdrawn_at", "created_at"), users=("created_by",)),
        "scope": _scope_column, "rate_bps": _rate_column, "status": _status_column,
    }
    column_filters = ("instructor_id", "course_id", "effective_from", "withdrawn_at")
    column_searchable_list = ("reason",)
    column_default_sort = ("id", True)

    def create_form(self, obj: Any = None) -> CommissionRuleForm:
        form = super().create_form(obj)
        form.set_scopes(*_scope_choices())
        return form

    def save(self, form: CommissionRuleForm, row_id: int | None) -> int:
        values = form.to_values()
        return rules.add_rule(values.rate_bps, values.effective_from, current_user.id, form.reason.data or "",
                              instructor_id=values.instructor_id, course_id=values.course_id)

    def _save(self, form: Any, row_id: int | None) -> int | None:
        try:
            return super()._save(form, row_id)
        except RuleError as error:
            db.session.rollback()
            flash(error.message, "error")
            return None

    @expose("/<int:row_id>/")
    def detail(self, row_id: int) -> str:
        rule = db.session.get(CommissionRule, row_id)
        if rule is None:
            abort(404)
        status = rule_status(rule)
        return self.render("admin/earnings_rule_detail.html", rule=rule, scope=rule_scope(rule), status=status,
                           rate=percent(rule.rate_bps), created_by=emails({rule.created_by}).get(rule.created_by),
                           may_withdraw=status == "scheduled" and self.may("withdraw"))

    @expose("/<int:rule_id>/withdraw", methods=("POST",))
    def withdraw(self, rule_id: int) -> Response:
        back = redirect(url_for(".detail", row_id=rule_id))
        form = ReasonForm()
        if not form.validate_on_submit():
            flash("Please give a reason for withdrawing the rule.", "error")
            return back
        return run_service(lambda: rules.withdraw_rule(rule_id, current_user.id, form.reason.data or ""),
                           "Withdrawn: the rule will not take effect.", back)


# --- Courses: co-authors ----------------------------------------------------------------

class CourseWithAuthorsView(CustomDetailsMixin, CourseView):
    """The course list and edit form, and a detail page with the rate in force and the
    co-authors who share the instructor part of each sale."""

    route_actions = {**CourseView.route_actions, "authors": "authors"}

    @expose("/<int:row_id>/")
    def detail(self, row_id: int) -> str:
        course = db.session.get(Course, row_id)
        if course is None:
            abort(404)
        authors = rules.authors_of(course)
        names = instructor_names(instructor_id for instructor_id, _ in authors)
        lines = "\n".join(f"{instructor_id}: {weight} ({names.get(instructor_id, '')})" for instructor_id, weight in authors)
        rate = rules.rate_for(course, now())
        return self.render("admin/earnings_course_detail.html", course=course, authors=authors, names=names,
                           weight_total=sum(weight for _, weight in authors),
                           rate=percent(rate) if rate is not None else None,
                           form=CourseAuthorsForm(authors=lines), may_set_authors=self.may("authors"))

    @expose("/<int:row_id>/authors", methods=("POST",))
    def authors(self, row_id: int) -> Response:
        back = redirect(url_for(".detail", row_id=row_id))
        form = CourseAuthorsForm()
        if not form.validate_on_submit():
            flash(form_problem(form), "error")
            return back
        try:
            authors = form.parsed_authors()
        except FormValueError as error:
            flash(error.message, "error")
            return back
        return run_service(lambda: rules.set_authors(row_id, authors, current_user.id, form.reason.data or ""),
                           "Co-authors saved: they share the orders placed from now on.", back)


# --- Instructors: bank account, balances, adjustments ------------------------------------

def _bank_account_column(_view: Any, _context: Any, instructor: Instructor, _name: str) -> str:
    account = account_of(instructor.id)
    return masked_number(account.last4) if account else "—"


class InstructorWithEarningsView(CustomDetailsMixin, InstructorView):
    """The instructor list and edit form, and a detail page with the masked bank account,
    the balances, recent earnings activity, and the adjustment form."""

    route_actions = {**InstructorView.route_actions, "adjust": "adjust"}
    column_list = (*InstructorView.column_list, "bank_account")
    column_labels = {"bank_account": "Bank account"}
    # The parent's own formatters, if it has any (Flask-Admin's class default is not a dict).
    column_formatters = {**vars(InstructorView).get("column_formatters", {}), "bank_account": _bank_account_column}

    @expose("/<int:row_id>/")
    def detail(self, row_id: int) -> str:
        instructor = db.session.get(Instructor, row_id)
        if instructor is None:
            abort(404)
        account = account_of(instructor.id)
        return self.render(
            "admin/earnings_instructor_detail.html", instructor=instructor, account=account,
            masked_account=masked_number(account.last4) if account else None, masked=masked_number,
            summary=summary_of(instructor.id), activity=recent_activity(instructor.id, RECENT_ACTIVITY),
            payouts=payouts_of(instructor.id) if may_view(current_role(), "payout") else None,
            may_adjust=self.may("adjust"),
            adjustment_key=uuid.uuid4().hex,  # one per rendered form: a resubmission books nothing
        )

    @expose("/<int:row_id>/adjust", methods=("POST",))
    def adjust(self, row_id: int) -> Response:
        back = redirect(url_for(".detail", row_id=row_id))
        form = AdjustmentForm()
        if not form.validate_on_submit():
            flash(form_problem(form), "error")
            return back
        try:
            amount_fen = form.amount_fen()
        except FormValueError as error:
            flash(error.message, "error")
            return back
        return run_service(
            lambda: adjustments.post_adjustment(row_id, amount_fen, form.reason.data or "", current_user.id,
                                                form.request_key.data or ""),
            f"Adjustment of {display_yuan(amount_fen)} booked to the available balance.", back,
        )


# --- Statements ---------------------------------------------------------------------------

def _files_column(_view: Any, _context: Any, statement: Statement, _name: str) -> Markup:
    return Markup('<a href="{}">CSV</a> · <a href="{}">PDF</a>').format(
        url_for("statement.csv_file", row_id=statement.id), url_for("statement.pdf_file", row_id=statement.id)
    )


class StatementView(ReadOnlyModelView):
    """Closed monthly statements, as their instructors download them. Never changed:
    a correction lands on a later month."""

    column_list = ("instructor_name", "period", "opening_fen", "closing_fen", "closed_at", "files")
    column_details_list = ("instructor_name", "period", "opening_fen", "sales_fen", "refunds_fen",
                           "adjustments_fen", "payouts_fen", "closing_fen", "pending_fen", "available_fen",
                           "closed_at", "files")
    column_labels = {"instructor_name": "Instructor", "opening_fen": "Opening", "sales_fen": "Sales",
                     "refunds_fen": "Refunds", "adjustments_fen": "Adjustments", "payouts_fen": "Payouts",
                     "closing_fen": "Closing", "pending_fen": "Of which pending",
                     "available_fen": "Of which available", "closed_at": "Closed at (Beijing)", "files": "Files",
                     "instructor_id": "Instructor id"}
    column_formatters = {
        **formatters(money=("opening_fen", "sales_fen", "refunds_fen", "adjustments_fen", "payouts_fen",
                            "closing_fen", "pending_fen", "available_fen"), times=("closed_at",)),
        "files": _files_column,
    }
    column_filters = ("period", "instructor_id")
    column_searchable_list = ("instructor_name", "period")
    column_default_sort = ("id", True)

    def _statement(self, row_id: int) -> Statement:
        statement = db.session.get(Statement, row_id)
        if statement is None:
            abort(404)
        return statement

    @expose("/<int:row_id>/csv")
    def csv_file(self, row_id: int) -> Response:
        statement = self._statement(row_id)
        filename = f"statement-{statement.instructor_id}-{statement.period}.csv"
        return download(stream_with_context(statement_csv_stream(statement)), "text/csv; charset=utf-8", filename)

    @expose("/<int:row_id>/pdf")
    def pdf_file(self, row_id: int) -> Response:
        statement = self._statement(row_id)
        body = statement_pdf_file(statement, current_app.config.get("STATEMENT_FONT_PATH"))
        return download(body, "application/pdf", f"statement-{statement.instructor_id}-{statement.period}.pdf")
