"""Payouts in the back office, for finance and admin only: batches of transfers to
instructors' banks, the bank file, and what the bank answered for each transfer.

Pages show account numbers masked (``•••• 1234``); the full numbers appear only in the
bank file, which is downloaded by a POST because the service audits every export.
"""
from __future__ import annotations

from flask import Response, abort, current_app, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.accounts.forms import EmptyForm
from app.admin.base import StaffView
from app.admin.earnings_views import download, form_problem, instructor_names, run_service
from app.admin.forms import FormValueError, MarkPaidForm, PayoutBatchForm, ReasonForm
from app.admin.queries import emails
from app.earnings import payouts
from app.earnings.bank_accounts import masked_number
from app.earnings.models import Payout, PayoutBatch
from app.earnings.payouts import PayoutError
from app.earnings.periods import period_of, previous_period
from app.extensions import db
from app.money import display_yuan, format_yuan
from app.timeutil import now

BATCHES_PER_PAGE = 20


def batches_page(page: int) -> tuple[list[PayoutBatch], bool]:
    """One page of batches, newest first, with their payouts; and whether more follow."""
    rows = list(db.session.scalars(
        select(PayoutBatch).options(selectinload(PayoutBatch.payouts))
        .order_by(PayoutBatch.id.desc())
        .offset((page - 1) * BATCHES_PER_PAGE).limit(BATCHES_PER_PAGE + 1)
    ))
    return rows[:BATCHES_PER_PAGE], len(rows) > BATCHES_PER_PAGE


def batch_result_message(result: payouts.BatchResult, period: str) -> str:
    message = (f"Batch #{result.batch_id} for {period}: {result.paid_instructors} payout(s), "
               f"{display_yuan(result.total_fen)} in total.")
    if result.skipped_without_account:
        message += " Skipped for lack of a bank account: " + ", ".join(result.skipped_without_account) + "."
    return message


class PayoutView(StaffView):
    route_actions = {"create_batch": "create_batch", "bank_file": "export_batch",
                     "mark_paid": "mark_paid", "mark_failed": "mark_failed"}

    def _render(self, template: str, batches: list[PayoutBatch], **context: object) -> str:
        instructor_ids = {payout.instructor_id for batch in batches for payout in batch.payouts}
        return self.render(template, batches=batches, names=instructor_names(instructor_ids),
                           people=emails({batch.created_by for batch in batches}), masked=masked_number, **context)

    def _index(self, form: PayoutBatchForm) -> str:
        page = max(request.args.get("page", 1, type=int) or 1, 1)
        batches, more = batches_page(page)
        return self._render("admin/earnings_payouts.html", batches, form=form, page=page, more=more)

    @expose("/")
    def index(self) -> str:
        return self._index(PayoutBatchForm(
            period=previous_period(period_of(now())),
            minimum_yuan=format_yuan(current_app.config["PAYOUT_MINIMUM_FEN"]),
        ))

    @expose("/batches", methods=("POST",))
    def create_batch(self) -> Response | str:
        form = PayoutBatchForm()  # no defaults: a field left out of the POST is missing, not filled in
        if not form.validate_on_submit():
            return self._index(form)
        try:
            minimum_fen = form.minimum_fen()
        except FormValueError as error:
            form.minimum_yuan.errors = [error.message]
            return self._index(form)
        period = form.period.data or ""
        try:
            result = payouts.create_batch(period, minimum_fen, current_user.id)
        except PayoutError as error:
            db.session.rollback()
            flash(error.message, "error")
            return self._index(form)
        db.session.commit()
        flash(batch_result_message(result, period), "success")
        return redirect(url_for(".detail", batch_id=result.batch_id))

    @expose("/<int:batch_id>/")
    def detail(self, batch_id: int) -> str:
        batch = db.session.get(PayoutBatch, batch_id)
        if batch is None:
            abort(404)
        return self._render("admin/earnings_payout_batch.html", [batch], batch=batch)

    @expose("/<int:batch_id>/bank-file", methods=("POST",))
    def bank_file(self, batch_id: int) -> Response:
        """The bank's transfer file, with the account numbers in clear."""
        back = redirect(url_for(".detail", batch_id=batch_id))
        if not EmptyForm().validate_on_submit():
            flash("The form expired; please try again.", "error")
            return back
        # A re-issue names its reason; the service refuses a second file without one.
        reissue_reason = ReasonForm().reason.data or None
        try:
            body = payouts.export_batch(batch_id, current_user.id, reissue_reason)
        except PayoutError as error:
            db.session.rollback()
            flash(error.message, "error")
            return back
        db.session.commit()  # the audit entry of the export, before the numbers leave
        return download(body, "text/csv; charset=utf-8", f"payouts-{batch_id}.csv")

    def _back_to_batch(self, payout_id: int) -> Response:
        payout = db.session.get(Payout, payout_id)
        if payout is None:
            abort(404)
        return redirect(url_for(".detail", batch_id=payout.batch_id))

    @expose("/payouts/<int:payout_id>/paid", methods=("POST",))
    def mark_paid(self, payout_id: int) -> Response:
        back = self._back_to_batch(payout_id)
        form = MarkPaidForm()
        if not form.validate_on_submit():
            flash(form_problem(form), "error")
            return back
        return run_service(lambda: payouts.mark_paid(payout_id, form.bank_reference.data or "", current_user.id),
                           f"Payout #{payout_id} marked paid.", back)

    @expose("/payouts/<int:payout_id>/failed", methods=("POST",))
    def mark_failed(self, payout_id: int) -> Response:
        back = self._back_to_batch(payout_id)
        form = ReasonForm()
        if not form.validate_on_submit():
            flash("Please give the reason the bank returned the transfer.", "error")
            return back
        return run_service(lambda: payouts.mark_failed(payout_id, form.reason.data or "", current_user.id),
                           f"Payout #{payout_id} marked failed: the amount is back in the instructor's available balance.",
                           back)
