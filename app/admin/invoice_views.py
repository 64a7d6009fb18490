"""Invoice requests in the back office: the queue (filter by status), each request's
page, and finance's three decisions. Everyone on staff reads; finance and admin act.

Routes: ``POST /admin/invoice/<id>/issue`` with ``invoice_number`` and ``invoice_file``
(multipart), ``POST /admin/invoice/<id>/reject`` with ``reason``,
``POST /admin/invoice/<id>/red-letter`` with ``red_letter_number``; each with
``csrf_token``. ``GET /admin/invoice/<id>/file`` downloads the issued file.
"""
from __future__ import annotations

from typing import Callable

from flask import abort, current_app, flash, redirect, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from app.admin.base import CustomDetailsMixin, ReadOnlyModelView
from app.admin.formatting import formatters
from app.admin.forms import ReasonForm
from app.admin.queries import emails
from app.audit.models import AuditEntry
from app.checkout.models import Order
from app.extensions import db
from app.invoices import services
from app.invoices.models import InvoiceRequest
from app.invoices.services import InvoiceError
from app.invoices.views import invoice_file_response


class IssueForm(FlaskForm):
    invoice_number = StringField("Invoice number (8 or 20 digits)", validators=[
        DataRequired("Please give the invoice number."), Length(max=40)])
    invoice_file = FileField("Invoice file (PDF or OFD)", validators=[
        FileRequired("Please attach the invoice file (PDF or OFD).")])


class RedLetterForm(FlaskForm):
    red_letter_number = StringField("Red-letter invoice number (8 or 20 digits)", validators=[
        DataRequired("Please give the red-letter invoice number."), Length(max=40)])


class InvoiceView(CustomDetailsMixin, ReadOnlyModelView):
    route_actions = {**ReadOnlyModelView.route_actions,
                     "issue": "issue", "reject": "reject", "red_letter": "red_letter"}
    column_list = ("id", "order_id", "status", "title_type", "title", "tax_id", "amount_fen", "refunded_fen",
                   "invoice_number", "red_letter_number", "requested_at", "issued_at")
    column_labels = {"order_id": "Order", "amount_fen": "Amount", "refunded_fen": "Refunded since",
                     "title_type": "Type"}
    column_formatters = formatters(money=("amount_fen", "refunded_fen"), times=("requested_at", "issued_at"),
                                   orders=("order_id",))
    column_filters = ("status", "title_type", "requested_at")
    column_searchable_list = ("invoice_number", "tax_id", "title")
    column_default_sort = ("id", True)
    column_exclude_list = ("file_content",)

    @expose("/<int:row_id>/")
    def detail(self, row_id: int) -> str:
        request = db.session.get(InvoiceRequest, row_id)
        if request is None:
            abort(404)
        order = db.session.get(Order, request.order_id)
        people = emails({order.user_id if order else None, request.requested_by, request.issued_by,
                         request.rejected_by, request.reversed_by})
        history = db.session.scalars(
            select(AuditEntry).where(AuditEntry.target_type == "invoice_request",
                                     AuditEntry.target_id == str(request.id)).order_by(AuditEntry.id)
        ).all()
        pending = request.status == "requested"
        return self.render(
            "admin/invoice_detail.html", invoice=request, order=order, people=people, history=history,
            issue_form=IssueForm(), reject_form=ReasonForm(), red_letter_form=RedLetterForm(),
            can_issue=pending and self.may("issue"), can_reject=pending and self.may("reject"),
            can_red_letter=request.status == "red_letter_required" and self.may("red_letter"),
            max_megabytes=current_app.config["INVOICE_MAX_FILE_BYTES"] // (1024 * 1024),
        )

    @expose("/<int:request_id>/file")
    def file(self, request_id: int) -> Response:
        document = services.invoice_document(request_id)
        if document is None or document.file_content is None:
            abort(404)
        return invoice_file_response(document)

    @expose("/<int:request_id>/issue", methods=("POST",))
    def issue(self, request_id: int) -> Response:
        form = IssueForm()
        if not form.validate_on_submit():
            return self._refused(request_id, form)
        limit = current_app.config["INVOICE_MAX_FILE_BYTES"]
        # One byte past the limit is enough to know it is too large.
        content = form.invoice_file.data.read(limit + 1)
        return self._decide(request_id, "Issued.", lambda staff_id: services.issue_invoice(
            request_id, staff_id, form.invoice_number.data or "", content))

    @expose("/<int:request_id>/reject", methods=("POST",))
    def reject(self, request_id: int) -> Response:
        form = ReasonForm()
        if not form.validate_on_submit():
            return self._refused(request_id, form)
        return self._decide(request_id, "Rejected.", lambda staff_id: services.reject_invoice(
            request_id, staff_id, form.reason.data or ""))

    @expose("/<int:request_id>/red-letter", methods=("POST",))
    def red_letter(self, request_id: int) -> Response:
        form = RedLetterForm()
        if not form.validate_on_submit():
            return self._refused(request_id, form)
        return self._decide(request_id, "Red-letter invoice recorded: the invoice is reversed.",
                            lambda staff_id: services.record_red_letter(
                                request_id, staff_id, form.red_letter_number.data or ""))

    def _refused(self, request_id: int, form: FlaskForm) -> Response:
        messages = [str(message) for errors in form.errors.values() for message in errors]
        flash(" ".join(messages) or "Please fill in the form.", "error")
        return redirect(url_for(".detail", row_id=request_id))

    def _decide(self, request_id: int, done: str, service: Callable[[int], None]) -> Response:
        """Call the service, commit, and say what happened; a refusal changes nothing."""
        try:
            service(current_user.id)
        except InvoiceError as error:
            db.session.rollback()
            flash(error.message, "error")
        else:
            db.session.commit()
            flash(done, "success")
        return redirect(url_for(".detail", row_id=request_id))
