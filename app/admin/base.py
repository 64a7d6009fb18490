"""Base classes of every back-office view: deny by default.

A view is open to the roles `PERMISSIONS` lists under its endpoint, and only once the
second factor was checked on the session; each route that changes something names an
action, checked against `ACTIONS` before the route runs. The anonymous are sent to log
in, staff without the second factor to pass it; anyone else who may not gets 403.
"""
from __future__ import annotations

from typing import Any, ClassVar

from flask import abort, redirect, request, url_for
from flask_admin import AdminIndexView, BaseView, expose
from flask_admin.contrib.sqla import ModelView
from flask_login import current_user
from werkzeug.wrappers import Response

from app.accounts.signin import needs_second_factor, second_factor_url, second_factor_verified
from app.admin.permissions import may, may_view

# Flask-Admin's own model routes and the action each one takes.
MODEL_ROUTE_ACTIONS: dict[str, str] = {
    "create_view": "create",
    "edit_view": "edit",
    "delete_view": "delete",
    "ajax_update": "inline_edit",  # list-cell editing: allowed to nobody, an edit needs a reason
    "export": "export",
}


def current_role() -> str | None:
    return current_user.role if current_user.is_authenticated else None


class StaffAccess:
    """Mixed into a Flask-Admin view. ``route_actions`` maps a route function's name
    to the action it takes; routes not listed there only read."""

    endpoint: str
    route_actions: ClassVar[dict[str, str]] = {}

    def is_accessible(self) -> bool:
        return may_view(current_role(), self.endpoint) and second_factor_verified()

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Response:
        target = request.full_path if request.query_string else request.path
        if not current_user.is_authenticated:
            return redirect(url_for("accounts.login", next=target))
        if needs_second_factor():
            return redirect(second_factor_url(target))
        abort(403)

    def may(self, action: str) -> bool:
        return may(current_role(), self.endpoint, action)

    def _handle_view(self, name: str, **kwargs: Any) -> Any:
        denied = super()._handle_view(name, **kwargs)  # type: ignore[misc]
        if denied is not None:
            return denied
        action = self.route_actions.get(name)
        if name == "action_view":
            # A list's batch action names itself in the form.
            action = request.form.get("action", "")
        if action is not None and not self.may(action):
            abort(403)
        return None


class StaffView(StaffAccess, BaseView):
    """A custom back-office page."""


class StaffIndexView(StaffAccess, AdminIndexView):
    """The admin index page, under the ``admin`` endpoint."""


class StaffModelView(StaffAccess, ModelView):
    """A list / detail view of rows. Create, edit and delete need both the class flag
    (``allow_*``: does this kind of row allow it at all) and the role's permission."""

    route_actions = MODEL_ROUTE_ACTIONS
    allow_create: ClassVar[bool] = False
    allow_edit: ClassVar[bool] = False
    can_view_details = True
    can_export = False
    page_size = 50

    @property  # type: ignore[override]
    def can_create(self) -> bool:
        return self.allow_create and self.may("create")

    @property  # type: ignore[override]
    def can_edit(self) -> bool:
        return self.allow_edit and self.may("edit")

    @property  # type: ignore[override]
    def can_delete(self) -> bool:
        return False  # nothing in the back office is deleted; money rows least of all


class ReadOnlyModelView(StaffModelView):
    """Money rows and logs: listed and shown, never created, edited or deleted here.
    Every change to money is a form or action that calls a service."""

    can_create = False  # type: ignore[assignment]
    can_edit = False  # type: ignore[assignment]
    can_delete = False  # type: ignore[assignment]


class CustomDetailsMixin:
    """A view whose detail page is our own template at ``/<id>/``: Flask-Admin's
    details link (``details/?id=``) leads there."""

    @expose("/details/")
    def details_view(self) -> Response:
        row_id = request.args.get("id", type=int)
        if row_id is None:
            return redirect(url_for(".index_view"))
        return redirect(url_for(".detail", row_id=row_id))
