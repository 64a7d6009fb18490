"""Platform events in the back office: the endpoints (admins only: create, enable or
disable, rotate or reveal the secret) and the delivery log (support and admins read it
and resend a delivered or failed delivery). Every change calls a service and is audited.
"""
from __future__ import annotations

from typing import Callable, TypeVar

from flask import abort, current_app, flash, redirect, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from app.admin.base import CustomDetailsMixin, ReadOnlyModelView
from app.admin.earnings_views import run_service
from app.admin.formatting import formatters
from app.admin.forms import ReasonForm
from app.errors import ServiceError
from app.extensions import db
from app.jobs import enqueue
from app.platform_events import endpoints
from app.platform_events.endpoints import EndpointError
from app.platform_events.models import (EVENT_TYPES, PlatformDelivery, PlatformDeliveryAttempt,
                                        PlatformEndpoint)
from app.platform_events.services import resend_delivery

RECENT_DELIVERIES = 20

T = TypeVar("T")


def with_reason(call: Callable[[str], T], back: Response, no_reason: str = "Please give a reason.") -> T | Response:
    """Call the service with the reason the staff member typed, and commit. Without a
    reason, nothing is called; on a refusal, the session rolls back. Either way the
    answer is ``back`` with the message flashed, or 404 for a row that is not there."""
    form = ReasonForm()
    if not form.validate_on_submit():
        flash(no_reason, "error")
        return back
    try:
        result = call(form.reason.data)
    except ServiceError as error:
        db.session.rollback()
        if error.code == "not_found":
            abort(404)
        flash(error.message, "error")
        return back
    db.session.commit()
    return result


class EndpointForm(FlaskForm):
    url = StringField("URL", validators=[DataRequired(), Length(max=endpoints.MAX_URL_LENGTH)])
    description = StringField("Description", validators=[Optional(), Length(max=255)])
    event_types = SelectMultipleField(
        "Events", choices=[SelectChoice(name) for name in EVENT_TYPES], default=list(EVENT_TYPES),
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
        validators=[DataRequired(message="Choose at least one event type.")],
    )


class PlatformEndpointView(CustomDetailsMixin, ReadOnlyModelView):
    route_actions = {**ReadOnlyModelView.route_actions, "new_endpoint": "create", "enable": "toggle",
                     "disable": "toggle", "rotate": "rotate_secret", "reveal": "reveal_secret"}
    list_template = "admin/platform_endpoint_list.html"
    column_list = ("id", "url", "description", "enabled", "event_types", "created_at", "secret_rotated_at")
    column_formatters = formatters(times=("created_at", "secret_rotated_at"))
    column_details_exclude_list = ("secret_key_id", "secret_ciphertext")
    column_filters = ("enabled",)
    column_default_sort = ("id", True)

    @expose("/create/", methods=("GET", "POST"))
    def new_endpoint(self) -> str:
        """The secret is on the page that answers the POST and nowhere else (not in a
        redirect, not in the session): the admin copies it to the platform now."""
        form = EndpointForm()
        if form.validate_on_submit():
            try:
                created = endpoints.create_endpoint(
                    form.url.data, form.description.data or "", form.event_types.data or [], current_user.id,
                    production=current_app.config["APP_ENV"] == "production")
            except EndpointError as error:
                db.session.rollback()
                form.url.errors = [*form.url.errors, error.message]
            else:
                db.session.commit()
                return self.render("admin/platform_endpoint_secret.html", endpoint_id=created.endpoint_id,
                                   secret=created.secret, heading="Endpoint created")
        return self.render("admin/platform_endpoint_new.html", form=form)

    @expose("/<int:row_id>/")
    def detail(self, row_id: int) -> str:
        endpoint = db.session.get(PlatformEndpoint, row_id)
        if endpoint is None:
            abort(404)
        recent = db.session.scalars(
            select(PlatformDelivery).where(PlatformDelivery.endpoint_id == row_id)
            .order_by(PlatformDelivery.id.desc()).limit(RECENT_DELIVERIES)
        ).all()
        return self.render("admin/platform_endpoint_detail.html", endpoint=endpoint, recent=recent,
                           form=ReasonForm())

    @expose("/<int:row_id>/enable", methods=("POST",))
    def enable(self, row_id: int) -> Response:
        return self._toggle(row_id, True)

    @expose("/<int:row_id>/disable", methods=("POST",))
    def disable(self, row_id: int) -> Response:
        return self._toggle(row_id, False)

    def _toggle(self, row_id: int, enabled: bool) -> Response:
        back = redirect(url_for(".detail", row_id=row_id))
        form = ReasonForm()
        if not form.validate_on_submit():
            flash("Please give a reason.", "error")
            return back
        return run_service(lambda: endpoints.set_enabled(row_id, enabled, current_user.id, form.reason.data),
                           "Enabled." if enabled else "Disabled: new events are not sent to it.", back)

    @expose("/<int:row_id>/rotate", methods=("POST",))
    def rotate(self, row_id: int) -> Response | str:
        return self._secret(row_id, endpoints.rotate_secret, "New secret")

    @expose("/<int:row_id>/reveal", methods=("POST",))
    def reveal(self, row_id: int) -> Response | str:
        return self._secret(row_id, endpoints.reveal_secret, "Current secret")

    def _secret(self, row_id: int, service: Callable[[int, int, str], str], heading: str) -> Response | str:
        secret = with_reason(lambda reason: service(row_id, current_user.id, reason),
                             redirect(url_for(".detail", row_id=row_id)))
        if isinstance(secret, Response):
            return secret
        return self.render("admin/platform_endpoint_secret.html", endpoint_id=row_id, secret=secret,
                           heading=heading)


class PlatformDeliveryView(CustomDetailsMixin, ReadOnlyModelView):
    """The delivery log, newest first."""

    route_actions = {**ReadOnlyModelView.route_actions, "resend": "resend"}
    column_list = ("id", "event_type", "endpoint_id", "status", "attempts", "next_attempt_at",
                   "last_http_status", "last_error", "last_response_ms", "created_at", "delivered_at",
                   "resent_from_id")
    column_labels = {"endpoint_id": "Endpoint", "last_http_status": "Last HTTP", "last_response_ms": "Last ms"}
    column_formatters = formatters(times=("next_attempt_at", "created_at", "delivered_at"))
    column_filters = ("status", "event_type", "endpoint_id", "created_at")
    column_default_sort = ("id", True)

    @expose("/<int:row_id>/")
    def detail(self, row_id: int) -> str:
        delivery = db.session.get(PlatformDelivery, row_id)
        if delivery is None:
            abort(404)
        tries = db.session.scalars(
            select(PlatformDeliveryAttempt).where(PlatformDeliveryAttempt.delivery_id == row_id)
            .order_by(PlatformDeliveryAttempt.number, PlatformDeliveryAttempt.id)
        ).all()
        return self.render("admin/platform_delivery_detail.html", delivery=delivery, tries=tries,
                           form=ReasonForm(),
                           may_resend=delivery.status in ("delivered", "failed") and self.may("resend"))

    @expose("/<int:row_id>/resend", methods=("POST",))
    def resend(self, row_id: int) -> Response:
        resent_id = with_reason(lambda reason: resend_delivery(row_id, current_user.id, reason),
                                redirect(url_for(".detail", row_id=row_id)), "Please give a reason for the resend.")
        if isinstance(resent_id, Response):
            return resent_id
        enqueue("deliver_event", resent_id)
        flash(f"Resent as delivery #{resent_id}.", "success")
        return redirect(url_for(".detail", row_id=resent_id))
