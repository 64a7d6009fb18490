"""Invoice requests: the learner's request, finance's decisions, and what a refund does
to an invoice.

Services: they flush, never commit, and write the audit log (staff decisions) in the
same transaction. Every status change goes through `rules.INVOICE` by compare-and-set.

The refund rule (README "Invoices"): an invoice is never for refunded money.
- Not yet issued: a refund lowers the amount to invoice to what the order still holds;
  a refund of the rest cancels the request.
- Issued: any refund, partial too, flags the invoice ``red_letter_required``. Finance
  reverses the WHOLE invoice with a red-letter invoice (a partial red letter would
  leave the learner an invoice for a mix of kept and refunded money); once it is
  reversed, the learner may ask for a new invoice of what the order still holds.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import undefer

from app.accounts.models import User
from app.audit.services import record
from app.checkout.models import Order
from app.errors import ServiceError
from app.extensions import db
from app.invoices.models import InvoiceRequest
from app.invoices.rules import (MAX_TITLE, OPEN_STATUSES, TITLE_TYPES, invoice_file_type, is_valid_credit_code,
                                is_valid_invoice_number, next_invoice_status, normalize_invoice_number,
                                normalize_tax_id)
from app.payments.models import Refund
from app.timeutil import now

INVOICEABLE_ORDER_STATUSES = ("paid", "partially_refunded")
INVOICE_STAFF = frozenset({"finance", "admin"})
MAX_REASON = 255


class InvoiceError(ServiceError):
    """An invoice step that cannot be taken; nothing was changed. The learner's messages
    are translated; finance's are the back office's, in English."""


@dataclass(frozen=True)
class InvoiceValues:
    """What the learner asks for, as typed (the service cleans and checks it)."""

    title_type: str
    title: str
    tax_id: str
    email: str


def remaining_fen(order: Order) -> int:
    """What the order still holds: its total less its customer refunds that went through."""
    refunded = db.session.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
            Refund.order_id == order.id, Refund.kind == "customer", Refund.status == "succeeded"
        )
    )
    return order.total_fen - int(refunded)


def open_request(order_id: int) -> InvoiceRequest | None:
    return db.session.scalar(
        select(InvoiceRequest).where(InvoiceRequest.order_id == order_id, InvoiceRequest.status.in_(OPEN_STATUSES))
    )


def _locked_order(order_id: int) -> Order | None:
    """The order, row-locked: a request and a refund completing at once are serialised."""
    return db.session.scalar(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    )


def request_invoice(order_id: int, user_id: int, values: InvoiceValues) -> int:
    """Store the learner's request for an invoice of their paid order; its id."""
    order = _locked_order(order_id)
    if order is None or order.user_id != user_id:
        raise InvoiceError("order_not_found", _l("No such order."))
    if order.status not in INVOICEABLE_ORDER_STATUSES:
        raise InvoiceError("order_not_paid", _l("An invoice can only be requested for a paid order."))
    if open_request(order.id) is not None:
        raise InvoiceError("already_requested", _l("An invoice was already requested for this order."))
    amount = remaining_fen(order)
    if amount <= 0:
        raise InvoiceError("order_not_paid", _l("An invoice can only be requested for a paid order."))
    title_type, title, tax_id, email = _checked(values)
    request = InvoiceRequest(
        order_id=order.id, status="requested", title_type=title_type, title=title, tax_id=tax_id,
        email=email, amount_fen=amount, refunded_fen=0, requested_by=user_id, requested_at=now(),
    )
    try:
        with db.session.begin_nested():
            db.session.add(request)
            db.session.flush()
    except IntegrityError:
        # Another request of this order was stored meanwhile (the partial unique index).
        raise InvoiceError("already_requested", _l("An invoice was already requested for this order.")) from None
    return request.id


def _checked(values: InvoiceValues) -> tuple[str, str, str | None, str]:
    if values.title_type not in TITLE_TYPES:
        raise InvoiceError("title_type", _l("Choose a personal or a company invoice."))
    title = " ".join((values.title or "").split())
    if not title:
        raise InvoiceError("title_required", _l("Please give the invoice title."))
    if len(title) > MAX_TITLE:
        raise InvoiceError("title_too_long", _l("The invoice title is at most %(max)d characters.", max=MAX_TITLE))
    email = (values.email or "").strip()
    if not email or len(email) > 254 or "@" not in email:
        raise InvoiceError("email", _l("Please give the e-mail address to send the invoice to."))
    tax_id = normalize_tax_id(values.tax_id)
    if values.title_type == "personal":
        if tax_id:
            raise InvoiceError("tax_id_personal", _l("A personal invoice has no tax id: leave it empty."))
        return "personal", title, None, email
    if not is_valid_credit_code(tax_id):
        raise InvoiceError("tax_id_invalid", _l(
            "The tax id is not a valid unified social credit code (18 letters and digits)."))
    return "company", title, tax_id, email


# --- finance ---------------------------------------------------------------------------


def _staff(staff_id: int) -> None:
    user = db.session.get(User, staff_id)
    if user is None or user.role not in INVOICE_STAFF:
        raise InvoiceError("forbidden", "Only finance or an admin may decide invoice requests.")


def _move(request_id: int, expected: str, event: str, **values: Any) -> None:
    """Compare-and-set: move the request from ``expected`` by ``event``, or refuse."""
    target = next_invoice_status(expected, event)
    result = db.session.execute(
        update(InvoiceRequest)
        .where(InvoiceRequest.id == request_id, InvoiceRequest.status == expected)
        .values(status=target, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise InvoiceError("changed", "This request changed meanwhile; reload and try again.")
    loaded = db.session.identity_map.get(db.session.identity_key(InvoiceRequest, request_id))
    if loaded is not None:
        db.session.expire(loaded)


def _request_in(request_id: int, status: str, problem: str) -> InvoiceRequest:
    request = db.session.get(InvoiceRequest, request_id)
    if request is None:
        raise InvoiceError("not_found", "No such invoice request.")
    if request.status != status:
        raise InvoiceError("wrong_status", problem)
    return request


def _snapshot(request: InvoiceRequest) -> dict[str, Any]:
    return {"status": request.status, "amount_fen": request.amount_fen, "refunded_fen": request.refunded_fen,
            "invoice_number": request.invoice_number, "red_letter_number": request.red_letter_number}


def issue_invoice(request_id: int, staff_id: int, invoice_number: str, content: bytes) -> None:
    """Record the invoice finance issued on the tax platform: its number and its file
    (PDF or OFD, judged by the bytes)."""
    _staff(staff_id)
    number = normalize_invoice_number(invoice_number)
    if not is_valid_invoice_number(number):
        raise InvoiceError("invoice_number", "An invoice number is 8 or 20 digits.")
    limit = current_app.config["INVOICE_MAX_FILE_BYTES"]
    if not content:
        raise InvoiceError("file_missing", "Please attach the invoice file (PDF or OFD).")
    if len(content) > limit:
        raise InvoiceError("file_too_large", f"The file is larger than {limit // (1024 * 1024)} MB.")
    file_type = invoice_file_type(content)
    if file_type is None:
        raise InvoiceError("file_type", "The file is neither a PDF nor an OFD document.")
    request = _request_in(request_id, "requested", "Only a requested invoice can be issued.")
    before = _snapshot(request)
    try:
        with db.session.begin_nested():
            _move(request.id, "requested", "issue", invoice_number=number, file_content=content,
                  file_type=file_type, file_size=len(content), file_sha256=hashlib.sha256(content).hexdigest(),
                  issued_by=staff_id, issued_at=now())
    except IntegrityError:
        raise InvoiceError("number_taken", f"Invoice number {number} is already recorded.") from None
    request = db.session.get(InvoiceRequest, request.id)
    record(staff_id, "invoice.issue", "invoice_request", request.id,
           f"issued invoice {number} ({file_type}, {len(content)} bytes)", before, _snapshot(request))


def reject_invoice(request_id: int, staff_id: int, reason: str) -> None:
    """Turn a request down; the learner sees the reason and may ask again."""
    _staff(staff_id)
    text = " ".join((reason or "").split())[:MAX_REASON]
    if not text:
        raise InvoiceError("reason_required", "Please give a reason.")
    request = _request_in(request_id, "requested", "Only a requested invoice can be rejected.")
    before = _snapshot(request)
    _move(request.id, "requested", "reject", reject_reason=text, rejected_by=staff_id, rejected_at=now())
    record(staff_id, "invoice.reject", "invoice_request", request.id, text, before,
           _snapshot(db.session.get(InvoiceRequest, request.id)))


def record_red_letter(request_id: int, staff_id: int, red_letter_number: str) -> None:
    """Record the red-letter invoice that reversed a refunded order's invoice in full."""
    _staff(staff_id)
    number = normalize_invoice_number(red_letter_number)
    if not is_valid_invoice_number(number):
        raise InvoiceError("invoice_number", "An invoice number is 8 or 20 digits.")
    request = _request_in(request_id, "red_letter_required", "Only an invoice flagged for red letter can be reversed.")
    if number == request.invoice_number:
        raise InvoiceError("same_number", "The red-letter invoice has a number of its own.")
    before = _snapshot(request)
    try:
        with db.session.begin_nested():
            _move(request.id, "red_letter_required", "reverse", red_letter_number=number,
                  reversed_by=staff_id, reversed_at=now())
    except IntegrityError:
        raise InvoiceError("number_taken", f"Red-letter number {number} is already recorded.") from None
    record(staff_id, "invoice.red_letter", "invoice_request", request.id, f"red-letter invoice {number}",
           before, _snapshot(db.session.get(InvoiceRequest, request.id)))


# --- refunds ---------------------------------------------------------------------------


def apply_refund(refund_id: int) -> None:
    """A customer refund went through (inside its transaction, the order locked): bring
    the order's open invoice request in line with the refund rule of this module."""
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.kind != "customer":
        return
    request = open_request(refund.order_id)
    if request is None:
        return
    order = db.session.get(Order, refund.order_id)
    assert order is not None
    remaining = max(remaining_fen(order), 0)
    before = _snapshot(request)
    if request.status == "requested":
        lowered_by = max(request.amount_fen - remaining, 0)
        if lowered_by == 0:
            return  # this refund was already counted
        if remaining == 0:
            _move(request.id, "requested", "cancel", amount_fen=0,
                  refunded_fen=request.refunded_fen + lowered_by, cancelled_at=now())
        else:
            _move(request.id, "requested", "reduce", amount_fen=remaining,
                  refunded_fen=request.refunded_fen + lowered_by)
    else:
        # Issued (or already flagged): the invoiced amount stays; note how much of it
        # has gone back to the learner.
        _move(request.id, request.status, "refund", refunded_fen=max(request.amount_fen - remaining, 0),
              red_letter_flagged_at=request.red_letter_flagged_at or now())
    record(None, "invoice.refund", "invoice_request", request.id, f"refund {refund.refund_no} went through",
           before, _snapshot(db.session.get(InvoiceRequest, request.id)))


# --- reading ---------------------------------------------------------------------------


def latest_requests(order_ids: Sequence[int]) -> dict[int, InvoiceRequest]:
    """The newest invoice request of each of these orders, in one query."""
    if not order_ids:
        return {}
    found: dict[int, InvoiceRequest] = {}
    for request in db.session.scalars(
        select(InvoiceRequest).where(InvoiceRequest.order_id.in_(order_ids)).order_by(InvoiceRequest.id)
    ):
        found[request.order_id] = request
    return found


def invoice_document(request_id: int, order_id: int | None = None) -> InvoiceRequest | None:
    """The request with its file loaded, if it has one (and belongs to ``order_id``)."""
    query = select(InvoiceRequest).options(undefer(InvoiceRequest.file_content)).where(
        InvoiceRequest.id == request_id, InvoiceRequest.file_type.is_not(None)
    )
    if order_id is not None:
        query = query.where(InvoiceRequest.order_id == order_id)
    return db.session.scalar(query)
