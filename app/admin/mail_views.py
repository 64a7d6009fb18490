"""The e-mail outbox in the back office: what was sent to whom and what failed, and
resending a failed message (support and admin; audited).

Support sees who got which message and why one failed; only admins read the bodies,
which carry learners' names, orders and amounts: support answers from the order pages.
"""
from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask_admin import expose
from flask_login import current_user
from werkzeug.wrappers import Response

from app.admin.base import CustomDetailsMixin, ReadOnlyModelView, current_role
from app.admin.formatting import formatters
from app.admin.forms import ReasonForm
from app.extensions import db
from app.mail.models import OutboxMessage
from app.mail.services import NotResendable, resend

BODY_READERS = frozenset({"admin"})


class OutboxView(CustomDetailsMixin, ReadOnlyModelView):
    route_actions = {**ReadOnlyModelView.route_actions, "resend": "resend"}
    column_list = ("id", "kind", "recipient", "subject", "status", "attempts", "next_attempt_at",
                   "last_error", "created_at", "sent_at")
    column_formatters = formatters(times=("next_attempt_at", "created_at", "sent_at"))
    column_searchable_list = ("recipient", "key")
    column_filters = ("status", "kind", "recipient", "created_at")
    column_default_sort = ("id", True)

    def search_placeholder(self) -> str:
        return "Recipient or key (order-paid:42)"

    @expose("/<int:row_id>/")
    def detail(self, row_id: int) -> str:
        message = db.session.get(OutboxMessage, row_id)
        if message is None:
            abort(404)
        return self.render("admin/outbox_detail.html", message=message, form=ReasonForm(),
                           may_resend=self.may("resend") and message.status == "failed",
                           show_body=current_role() in BODY_READERS)

    @expose("/<int:row_id>/resend", methods=("POST",))
    def resend(self, row_id: int) -> Response:
        form = ReasonForm()
        back = redirect(url_for(".detail", row_id=row_id))
        if not form.validate_on_submit():
            flash("Please give a reason for the resend.", "error")
            return back
        if db.session.get(OutboxMessage, row_id) is None:
            abort(404)
        try:
            resend(row_id, current_user.id, form.reason.data)
        except NotResendable:
            db.session.rollback()
            flash("Only a failed message can be resent.", "error")
            return back
        db.session.commit()
        # The periodic round sends it within its interval; no job here, so a resend
        # never races the round that would find it anyway.
        flash("The message is queued again and goes out with the next round.", "success")
        return back
