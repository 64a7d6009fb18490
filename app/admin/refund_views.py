"""Refunds in the back office: the list, the detail page with the policy staff weigh,
and the three decisions (approve, reject, retry).

The decision routes are a contract (the end-to-end test posts to them):
``POST /admin/refund/<id>/approve|reject|retry`` with ``reason`` and ``csrf_token``.
"""
from __future__ import annotations

from typing import Callable

from flask import abort, current_app, flash, redirect, url_for
from flask_admin import expose
from flask_login import current_user
from werkzeug.wrappers import Response

from app.admin.base import CustomDetailsMixin, ReadOnlyModelView
from app.admin.formatting import formatters
from app.admin.forms import ReasonForm
from app.admin.queries import refund_detail
from app.extensions import db
from app.jobs import enqueue
from app.payments import refund_workflow
from app.payments.refund_workflow import RefundError

DECISIONS: dict[str, tuple[Callable[[int, int, str], object], str]] = {
    "approve": (refund_workflow.approve_refund, "Approved"),
    "reject": (refund_workflow.reject_refund, "Rejected"),
    "retry": (refund_workflow.retry_refund, "Sent again"),
}


class RefundView(CustomDetailsMixin, ReadOnlyModelView):
    route_actions = {**ReadOnlyModelView.route_actions,
                     "approve": "approve", "reject": "reject", "retry": "retry"}
    column_list = ("refund_no", "order_id", "kind", "amount_fen", "status", "reason", "created_at",
                   "succeeded_at", "tries", "last_error")
    column_labels = {"order_id": "Order", "amount_fen": "Amount"}
    column_formatters = formatters(money=("amount_fen",), times=("created_at", "succeeded_at"), orders=("order_id",))
    column_filters = ("status", "kind", "created_at")
    column_searchable_list = ("refund_no",)
    column_default_sort = ("id", True)

    @expose("/<int:row_id>/")
    def detail(self, row_id: int) -> str:
        detail = refund_detail(row_id, current_app.config["LARGE_REFUND_FEN"])
        if detail is None:
            abort(404)
        refund = detail.refund
        pending = refund.kind == "customer" and refund.status in ("requested", "awaiting_finance")
        second_approval = refund.status == "awaiting_finance"
        # The service has the last word (e.g. the first approver may not also give the
        # second); the page only hides buttons the role can never use.
        return self.render(
            "admin/refund_detail.html",
            detail=detail,
            form=ReasonForm(),
            can_approve=pending and self.may("approve") and (not second_approval or self.may("second_approval")),
            can_reject=pending and self.may("reject"),
            can_retry=refund.status == "failed" and self.may("retry"),
            second_approval=second_approval,
        )

    @expose("/<int:refund_id>/approve", methods=("POST",))
    def approve(self, refund_id: int) -> Response:
        return self._decide(refund_id, "approve")

    @expose("/<int:refund_id>/reject", methods=("POST",))
    def reject(self, refund_id: int) -> Response:
        return self._decide(refund_id, "reject")

    @expose("/<int:refund_id>/retry", methods=("POST",))
    def retry(self, refund_id: int) -> Response:
        return self._decide(refund_id, "retry")

    def _decide(self, refund_id: int, decision: str) -> Response:
        """Parse, call the workflow, commit, and only then enqueue the execution."""
        back = redirect(url_for(".detail", row_id=refund_id))
        form = ReasonForm()
        if not form.validate_on_submit():
            flash("Please give a reason for your decision.", "error")
            return back
        service, done = DECISIONS[decision]
        try:
            new_status = service(refund_id, current_user.id, form.reason.data)
        except RefundError as error:
            db.session.rollback()
            flash(error.message, "error")
            return back
        db.session.commit()
        if decision == "retry" or new_status == "approved":
            enqueue("execute_refund", refund_id)
        if new_status == "awaiting_finance":
            flash("First approval recorded: finance must give the second approval.", "success")
        else:
            flash(f"{done}.", "success")
        return back
