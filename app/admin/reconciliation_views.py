"""The reconciliation queue: what the channels' daily bills and our records disagree
on, each discrepancy's two sides, and what staff did about it.

Routes (finance and admin act; `PERMISSIONS` says who may look):
``POST /admin/reconciliation/<id>/resolve`` with ``resolution`` and ``reason``,
``POST /admin/reconciliation/<id>/ask-channel`` with ``reason``, and
``POST /admin/reconciliation/run`` with ``bill_date`` and ``channel``.
"""
from __future__ import annotations

from datetime import date, timedelta

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import DateField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired

from app.admin.base import StaffView
from app.admin.forms import ReasonForm, reason_field
from app.admin.queries import DiscrepancyFilters, discrepancy_detail, discrepancy_page, recent_runs
from app.config import CHANNELS
from app.extensions import db
from app.jobs import enqueue
from app.payments.registry import LABELS, enabled_channels
from app.reconciliation import services
from app.reconciliation.models import KINDS
from app.reconciliation.runs import channel_day
from app.reconciliation.services import ReconciliationError
from app.timeutil import beijing, now

PER_PAGE = 50
# Pages beyond any real queue: a larger number would overflow the database's OFFSET.
MAX_PAGE = 10**6
RECENT_RUNS = 14
STATUSES = ("open", "resolved")
KIND_LABELS = {
    "missing_ours": "On the bill, not in our records",
    "missing_theirs": "In our records, not on the bill",
    "amount_mismatch": "Amounts differ",
    "status_mismatch": "Statuses differ",
    "fee_mismatch": "Fees differ",
}
RESOLUTION_LABELS = {
    "corrected": "Our records were corrected",
    "channel": "Taken up with the channel",
    "accepted": "Explained: nothing to correct",
}


class ResolveForm(FlaskForm):
    resolution = SelectField("What was done", choices=[SelectChoice(value, label)
                                                       for value, label in RESOLUTION_LABELS.items()])
    reason = reason_field()


class RunForm(FlaskForm):
    bill_date = DateField("Day (Beijing)", validators=[DataRequired("Please give the day, as YYYY-MM-DD.")])
    channel = SelectField("Channel", choices=[SelectChoice("", "Every enabled channel")]
                          + [SelectChoice(name, LABELS[name]) for name in CHANNELS])


def _filters() -> tuple[DiscrepancyFilters, list[str]]:
    """The queue's filters from the query string; values that cannot be right are
    dropped, with a word for the page."""
    args, problems = request.args, []
    channel, kind, status = args.get("channel") or None, args.get("kind") or None, args.get("status") or None
    if channel not in (None, *CHANNELS):
        problems.append(f"Unknown channel {channel!r}: showing every channel.")
        channel = None
    if kind not in (None, *KINDS):
        problems.append(f"Unknown kind {kind!r}: showing every kind.")
        kind = None
    if status not in (None, *STATUSES):
        problems.append(f"Unknown status {status!r}: showing every status.")
        status = None
    bill_date = None
    if args.get("date"):
        try:
            bill_date = date.fromisoformat(args["date"])
        except ValueError:
            problems.append("A day is written YYYY-MM-DD: showing every day.")
    return DiscrepancyFilters(channel, bill_date, kind, status), problems


class ReconciliationView(StaffView):
    route_actions = {"resolve": "resolve", "ask_channel": "ask_channel", "run": "run"}

    def _index(self, run_form: RunForm) -> str:
        filters, problems = _filters()
        page = min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)
        rows, more = discrepancy_page(filters, page, PER_PAGE)
        return self.render(
            "admin/reconciliation.html", rows=rows, more=more, page=page, filters=filters, problems=problems,
            runs=recent_runs(RECENT_RUNS), run_form=run_form, may_run=self.may("run"),
            channels=CHANNELS, kinds=KINDS, statuses=STATUSES, kind_labels=KIND_LABELS,
        )

    @expose("/")
    def index(self) -> str:
        return self._index(RunForm(bill_date=beijing(now()).date() - timedelta(days=1)))

    # Ids beyond the key column (INTEGER: 32 bits on PostgreSQL) do not match the
    # routes, a 404: the database would refuse to compare them, a 500.
    @expose("/<int(max=2147483647):discrepancy_id>/")
    def discrepancy(self, discrepancy_id: int) -> str:
        detail = discrepancy_detail(discrepancy_id)
        if detail is None:
            abort(404)
        row = detail.discrepancy
        question = services.current_question(row) if row.status == "open" else None
        return self.render(
            "admin/reconciliation_detail.html", detail=detail, row=row, resolve_form=ResolveForm(),
            may_resolve=row.status == "open" and self.may("resolve"),
            may_ask=question is not None and self.may("ask_channel"),
            kind_labels=KIND_LABELS, resolution_labels=RESOLUTION_LABELS,
        )

    @expose("/<int(max=2147483647):discrepancy_id>/resolve", methods=("POST",))
    def resolve(self, discrepancy_id: int) -> Response:
        back = redirect(url_for(".discrepancy", discrepancy_id=discrepancy_id))
        form = ResolveForm()
        if not form.validate_on_submit():
            flash("Please choose what was done and say what was found.", "error")
            return back
        try:
            services.resolve_discrepancy(discrepancy_id, current_user.id, form.resolution.data or "",
                                         form.reason.data or "", now())
        except ReconciliationError as error:
            db.session.rollback()
            flash(error.message, "error")
            return back if error.code != "not_found" else redirect(url_for(".index"))
        db.session.commit()
        flash("Resolved.", "success")
        return back

    @expose("/<int(max=2147483647):discrepancy_id>/ask-channel", methods=("POST",))
    def ask_channel(self, discrepancy_id: int) -> Response:
        """Audit the question, commit, and only then enqueue it. The job may be lost
        (Redis down: `enqueue` only logs), so the page claims nothing: the answer shows
        on the discrepancy when the job has run."""
        back = redirect(url_for(".discrepancy", discrepancy_id=discrepancy_id))
        form = ReasonForm()
        if not form.validate_on_submit():
            flash("Please give a reason for asking the channel.", "error")
            return back
        try:
            question = services.ask_channel(discrepancy_id, current_user.id, form.reason.data or "", now())
        except ReconciliationError as error:
            db.session.rollback()
            flash(error.message, "error")
            return back if error.code != "not_found" else redirect(url_for(".index"))
        db.session.commit()
        if question.refund_id is not None:
            enqueue("execute_refund", question.refund_id)
        elif question.attempt_id is not None:
            enqueue("recheck_attempt", question.attempt_id)
        flash("Asked the channel; the outcome will appear here. Once it has answered, run the day again, "
              "then resolve this.", "info")
        return back

    @expose("/run", methods=("POST",))
    def run(self) -> Response | str:
        form = RunForm()
        if not form.validate_on_submit():
            return self._index(form)
        bill_date: date = form.bill_date.data
        if bill_date >= beijing(now()).date():
            form.bill_date.errors = ["A day's bill is published the next morning: choose a day before today."]
            return self._index(form)
        channels = (form.channel.data,) if form.channel.data else enabled_channels()
        # Nothing to commit first: the job records its run itself.
        for channel in channels:
            enqueue("reconcile_bill", channel_day(channel, bill_date))
        flash(f"Reconciliation of {bill_date.isoformat()} started for {', '.join(channels)}; "
              "the runs below show how it went.", "success")
        return redirect(url_for(".index", date=bill_date.isoformat()))
