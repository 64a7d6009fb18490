"""Read-only views of money rows (receipts among them), and the one change staff may
make among them: replaying a stored notification (a form that calls the payments
service)."""
from __future__ import annotations

import re
from typing import Any, Callable

from flask import abort, flash, redirect, url_for
from flask_admin import expose
from flask_admin.contrib.sqla import tools
from flask_login import current_user
from sqlalchemy import ColumnElement, or_, select
from werkzeug.wrappers import Response

from app.accounts.models import User
from app.accounts.services import normalize_email
from app.admin.base import CustomDetailsMixin, ReadOnlyModelView, StaffView
from app.admin.formatting import BeijingDayFilter, UserEmailFilter, formatters
from app.admin.forms import ReasonForm
from app.admin.queries import order_detail
from app.checkout.models import Order
from app.checkout.services import ORDER_NO_RE
from app.extensions import db
from app.jobs import enqueue
from app.payments.health import health_report
from app.payments.models import InboxNotification
from app.payments.registry import enabled_channels
from app.payments.services import replay_notification
from app.receipts.models import Receipt
from app.receipts.services import RECEIPT_NO_RE


_WHOLE_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PART_OF_ORDER_NO = re.compile(r"C{0,2}[0-9]+|C{1,2}")


def order_search_condition(term: str) -> ColumnElement[bool]:
    """What one search word matches. A whole order number or a whole e-mail address, what
    staff paste nearly always, is looked up by its unique index (a million orders answer
    at once); anything else is a substring of the learner's e-mail, or of the order
    number when it could be part of one (``CC`` and digits), which scans."""
    upper = term.upper()
    if ORDER_NO_RE.fullmatch(upper):
        return Order.order_no == upper
    if _WHOLE_EMAIL.fullmatch(term):
        return Order.user_id.in_(select(User.id).where(User.email == normalize_email(term)))
    like = tools.parse_like_term(term)
    condition = Order.user_id.in_(select(User.id).where(User.email.ilike(like)))
    if _PART_OF_ORDER_NO.fullmatch(upper):
        condition = or_(Order.order_no.ilike(like), condition)
    return condition


def receipt_search_condition(term: str) -> ColumnElement[bool]:
    """What one search word matches: a whole receipt number or a whole order number is
    looked up by its unique index; anything else is a substring of either, which scans."""
    upper = term.upper()
    if RECEIPT_NO_RE.fullmatch(upper):
        return Receipt.receipt_no == upper
    if ORDER_NO_RE.fullmatch(upper):
        return Receipt.order_id.in_(select(Order.id).where(Order.order_no == upper))
    like = tools.parse_like_term(term)
    return or_(Receipt.receipt_no.ilike(like),
               Receipt.order_id.in_(select(Order.id).where(Order.order_no.ilike(like))))


def each_word_matches(condition_of: Callable[[str], ColumnElement[bool]], query: Any, count_query: Any,
                      joins: Any, count_joins: Any, search: str) -> tuple[Any, Any, Any, Any]:
    """Flask-Admin's ``_apply_search`` with our own condition for each word of the search."""
    for term in search.split():
        condition = condition_of(term)
        query = query.filter(condition)
        if count_query is not None:
            count_query = count_query.filter(condition)
    return query, count_query, joins, count_joins


class OrderView(CustomDetailsMixin, ReadOnlyModelView):
    column_list = ("order_no", "user_id", "kind", "status", "total_fen", "discount_fen", "coupon_code",
                   "created_at", "paid_at")
    column_labels = {"user_id": "Learner", "total_fen": "Total", "discount_fen": "Discount"}
    column_formatters = formatters(money=("total_fen", "discount_fen"), times=("created_at", "paid_at"),
                                   users=("user_id",))
    column_searchable_list = ("order_no",)
    column_filters = (
        "status",
        "kind",
        UserEmailFilter(Order.user_id, "Learner"),
        BeijingDayFilter(Order.created_at, "Created"),
        BeijingDayFilter(Order.paid_at, "Paid"),
        "created_at",
        "paid_at",
        "coupon_code",
    )
    column_default_sort = ("id", True)

    def search_placeholder(self) -> str:
        return "Order number or learner e-mail"

    def _apply_search(self, query: Any, count_query: Any, joins: Any, count_joins: Any,
                      search: str) -> tuple[Any, Any, Any, Any]:
        """Each word must match the order number or the learner's e-mail (see
        `order_search_condition`)."""
        return each_word_matches(order_search_condition, query, count_query, joins, count_joins, search)

    @expose("/<int:row_id>/")
    def detail(self, row_id: int) -> str:
        detail = order_detail(row_id)
        if detail is None:
            abort(404)
        return self.render("admin/order_detail.html", detail=detail)


class AttemptView(ReadOnlyModelView):
    column_list = ("out_trade_no", "order_id", "channel", "amount_fen", "status", "channel_trade_no",
                   "created_at", "succeeded_at", "closed_at", "queries", "last_error")
    column_labels = {"order_id": "Order", "amount_fen": "Amount"}
    column_formatters = formatters(money=("amount_fen",), times=("created_at", "succeeded_at", "closed_at"),
                                   orders=("order_id",))
    column_searchable_list = ("out_trade_no", "channel_trade_no")
    column_filters = ("channel", "status", "created_at")
    column_default_sort = ("id", True)
    column_details_exclude_list = ("qr_code",)


class ReceiptView(ReadOnlyModelView):
    """Receipts as signed; the table is append-only (database triggers refuse an update
    or a delete), so there is nothing here to change."""

    column_list = ("receipt_no", "kind", "order_id", "amount_fen", "issued_at", "key_id")
    column_labels = {"receipt_no": "Receipt no", "order_id": "Order", "amount_fen": "Amount", "key_id": "Key"}
    column_formatters = formatters(money=("amount_fen",), times=("issued_at",), orders=("order_id",))
    column_searchable_list = ("receipt_no",)
    column_filters = ("kind", "key_id", BeijingDayFilter(Receipt.issued_at, "Issued"), "issued_at")
    column_default_sort = ("id", True)

    def search_placeholder(self) -> str:
        return "Receipt number or order number"

    def _apply_search(self, query: Any, count_query: Any, joins: Any, count_joins: Any,
                      search: str) -> tuple[Any, Any, Any, Any]:
        """Each word must match the receipt number or the order number (see
        `receipt_search_condition`)."""
        return each_word_matches(receipt_search_condition, query, count_query, joins, count_joins, search)


class InboxView(CustomDetailsMixin, ReadOnlyModelView):
    """The notification inbox: what each verified callback said and what came of it."""

    route_actions = {**ReadOnlyModelView.route_actions, "replay": "replay"}
    column_list = ("id", "channel", "out_trade_no", "trade_state", "amount_fen", "status", "outcome",
                   "deliveries", "received_at", "processed_at")
    column_formatters = formatters(money=("amount_fen",), times=("received_at", "processed_at"))
    column_searchable_list = ("out_trade_no", "channel_trade_no")
    column_filters = ("channel", "status", "trade_state", "received_at")
    column_default_sort = ("id", True)

    @expose("/<int:row_id>/")
    def detail(self, row_id: int) -> str:
        row = db.session.get(InboxNotification, row_id)
        if row is None:
            abort(404)
        return self.render("admin/inbox_detail.html", row=row, form=ReasonForm(),
                           may_replay=self.may("replay"))

    @expose("/<int:row_id>/replay", methods=("POST",))
    def replay(self, row_id: int) -> Response:
        form = ReasonForm()
        back = redirect(url_for(".detail", row_id=row_id))
        if not form.validate_on_submit():
            flash("Please give a reason for the replay.", "error")
            return back
        if db.session.get(InboxNotification, row_id) is None:
            abort(404)
        settlement = replay_notification(row_id, current_user.id, form.reason.data)
        db.session.commit()
        if settlement.refund_id is not None:
            enqueue("execute_refund", settlement.refund_id)
        flash(f"Replayed: {settlement.outcome}", "success")
        return back


class OrphanView(ReadOnlyModelView):
    column_list = ("id", "order_id", "attempt_id", "amount_fen", "reason", "resolution", "refund_id",
                   "created_at")
    column_labels = {"order_id": "Order", "amount_fen": "Amount"}
    column_formatters = formatters(money=("amount_fen",), times=("created_at",), orders=("order_id",))
    column_filters = ("resolution", "created_at")
    column_default_sort = ("id", True)


class RejectedView(ReadOnlyModelView):
    column_list = ("id", "channel", "reason", "out_trade_no", "remote_addr", "received_at")
    column_formatters = formatters(times=("received_at",))
    column_filters = ("channel", "reason", "received_at")
    column_searchable_list = ("out_trade_no",)
    column_default_sort = ("id", True)


class AuditView(ReadOnlyModelView):
    """The append-only audit log, newest first."""

    column_list = ("created_at", "actor_email", "action", "target_type", "target_id", "reason")
    column_labels = {"actor_email": "Actor"}
    column_formatters = formatters(times=("created_at",))
    column_filters = ("action", "actor_email", "actor_id", "target_type", "target_id", "created_at")
    column_searchable_list = ("reason", "actor_email", "action")
    column_default_sort = ("id", True)


class ChannelHealthView(StaffView):
    @expose("/")
    def index(self) -> str:
        return self.render("admin/channel_health.html", report=health_report(enabled_channels()))
