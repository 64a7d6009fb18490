"""The learner's side of invoices: request one for a paid order, see it on the order
list, download the issued file. Someone else's order is not found (404)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.checkout.models import Order
from app.checkout.services import order_for_user
from app.extensions import db
from app.invoices import services
from app.invoices.forms import InvoiceRequestForm
from app.invoices.models import InvoiceRequest
from app.invoices.rules import FILE_TYPES

bp = Blueprint("invoices", __name__)

# A learner may download the file while the invoice stands (a refund flags it, but it
# is theirs until finance reverses it).
DOWNLOADABLE = ("issued", "red_letter_required")


@bp.app_context_processor
def invoice_helpers() -> dict[str, Callable[..., Any]]:
    """For the order list: the newest invoice request of each order, in one query."""

    def invoice_requests_for(orders: Sequence[Order]) -> dict[int, InvoiceRequest]:
        return services.latest_requests([order.id for order in orders])

    return {"invoice_requests_for": invoice_requests_for, "invoice_downloadable": DOWNLOADABLE}


def _my_order_or_404(order_no: str) -> Order:
    order = order_for_user(order_no, current_user.id)
    if order is None:
        abort(404)
    return order


@bp.route("/orders/<order_no>/invoice", methods=["GET", "POST"])
@login_required
def request_invoice(order_no: str) -> str | Response:
    order = _my_order_or_404(order_no)
    form = InvoiceRequestForm()
    if form.validate_on_submit():
        values = services.InvoiceValues(form.title_type.data, form.title.data or "", form.tax_id.data or "",
                                        form.email.data or "")
        try:
            services.request_invoice(order.id, current_user.id, values)
        except services.InvoiceError as error:
            db.session.rollback()
            flash(error.message, "error")
        else:
            db.session.commit()
            flash(_("Your invoice request was sent. Finance issues it within a few working days."), "success")
            return redirect(url_for("checkout.my_orders"))
    elif form.is_submitted():
        for errors in form.errors.values():
            for message in errors:
                flash(str(message), "error")
    elif not form.email.data:
        form.email.data = current_user.email
    order = db.session.get(Order, order.id)  # after a rollback, read it again
    return render_template(
        "invoices/request.html", order=order, form=form,
        current=services.latest_requests([order.id]).get(order.id),
        invoiceable=order.status in services.INVOICEABLE_ORDER_STATUSES,
    )


@bp.route("/orders/<order_no>/invoices/<int:request_id>/file")
@login_required
def download(order_no: str, request_id: int) -> Response:
    """The issued invoice file; its name is made from the invoice number."""
    order = _my_order_or_404(order_no)
    document = services.invoice_document(request_id, order.id)
    if document is None or document.status not in DOWNLOADABLE or document.file_content is None:
        abort(404)
    return invoice_file_response(document)


def invoice_file_response(document: InvoiceRequest) -> Response:
    """The file as an attachment, never rendered inline by the browser."""
    assert document.file_type is not None and document.file_content is not None
    response = Response(document.file_content, mimetype=FILE_TYPES[document.file_type])
    response.headers["Content-Disposition"] = (
        f'attachment; filename="invoice-{document.invoice_number}.{document.file_type}"'
    )
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
