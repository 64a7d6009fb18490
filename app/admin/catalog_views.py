"""Coupons, courses, instructors and users: rows staff may create or edit, always
through a service that validates and writes the audit log (never Flask-Admin's own
populate-and-commit)."""
from __future__ import annotations

from typing import Any, ClassVar

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from werkzeug.wrappers import Response

from app.accounts.mfa import recovery_codes_left, reset_second_factor
from app.accounts.models import User
from app.accounts.services import AccountError, change_role
from app.admin.base import CustomDetailsMixin, StaffModelView
from app.admin.formatting import formatters
from app.admin.forms import CouponForm, CourseForm, FormValueError, InstructorForm, ReasonForm, RoleForm
from app.admin.services import EditError, update_course, update_instructor
from app.cart.services import CartError, save_coupon
from app.extensions import db

SERVICE_ERRORS = (AccountError, CartError, EditError)


class ServiceEditView(StaffModelView):
    """Create and edit call ``save(form, row_id)``, which calls one service and
    returns the row's id; this class commits, or rolls back and shows the error."""

    form: ClassVar[type[Any]]
    # The refusals ``save`` may raise, shown to the staff member.
    service_errors: ClassVar[tuple[type[Exception], ...]] = SERVICE_ERRORS

    def save(self, form: Any, row_id: int | None) -> int:
        raise NotImplementedError

    def on_form_prefill(self, form: Any, id: Any) -> None:
        # Only on GET: after a failed POST the form keeps what the staff member typed.
        if request.method == "GET":
            form.prefill(self.get_one(id))

    def create_model(self, form: Any) -> Any:
        row_id = self._save(form, None)
        return False if row_id is None else db.session.get(self.model, row_id)

    def update_model(self, form: Any, model: Any) -> bool:
        return self._save(form, model.id) is not None

    def _save(self, form: Any, row_id: int | None) -> int | None:
        try:
            saved = self.save(form, row_id)
        except FormValueError as error:
            db.session.rollback()
            flash(f"{form[error.field].label.text}: {error.message}", "error")
            return None
        except self.service_errors as error:
            db.session.rollback()
            flash(error.message, "error")
            return None
        db.session.commit()
        return saved


class CouponView(ServiceEditView):
    allow_create = True
    allow_edit = True
    form = CouponForm
    column_list = ("code", "kind", "percent_off_bps", "amount_off_fen", "starts_at", "ends_at",
                   "min_amount_fen", "redeemed_count", "max_redemptions", "per_user_limit", "is_active")
    column_labels = {"percent_off_bps": "Percent off (bps)", "amount_off_fen": "Amount off"}
    column_formatters = formatters(money=("amount_off_fen", "min_amount_fen"),
                                   times=("starts_at", "ends_at", "created_at"))
    column_searchable_list = ("code",)
    column_filters = ("kind", "is_active")
    column_default_sort = ("id", True)

    def save(self, form: CouponForm, row_id: int | None) -> int:
        return save_coupon(row_id, form.to_values(), current_user.id, form.reason.data)


class CourseView(ServiceEditView):
    allow_edit = True
    form = CourseForm
    column_list = ("id", "slug", "title_zh", "title_en", "price_fen", "is_published")
    column_formatters = formatters(money=("price_fen",), times=("created_at",))
    column_searchable_list = ("slug", "title_zh", "title_en")
    column_filters = ("is_published",)

    def save(self, form: CourseForm, row_id: int | None) -> int:
        assert row_id is not None  # courses are not created here
        update_course(row_id, form.to_values(), current_user.id, form.reason.data)
        return row_id


class InstructorView(ServiceEditView):
    allow_edit = True
    form = InstructorForm
    column_list = ("id", "name", "user_id")
    column_searchable_list = ("name",)
    column_details_exclude_list = ("courses",)

    def save(self, form: InstructorForm, row_id: int | None) -> int:
        assert row_id is not None
        update_instructor(row_id, form.to_values(), current_user.id, form.reason.data)
        return row_id


class UserView(CustomDetailsMixin, ServiceEditView):
    """Users and their roles (admins only). Editing means changing the role; a staff
    member's second factor can be reset from the user's page."""

    route_actions = {**ServiceEditView.route_actions, "reset_second_factor": "reset_mfa"}
    allow_edit = True
    form = RoleForm
    column_list = ("id", "email", "display_name", "role", "is_active_account", "mfa_enrolled_at", "created_at")
    column_labels = {"mfa_enrolled_at": "Second factor since"}
    column_formatters = formatters(times=("created_at", "mfa_enrolled_at"))
    column_searchable_list = ("email", "display_name")
    column_filters = ("role", "is_active_account")

    def save(self, form: RoleForm, row_id: int | None) -> int:
        assert row_id is not None
        change_role(row_id, form.role.data, current_user.id, form.reason.data)
        return row_id

    @expose("/<int:row_id>/")
    def detail(self, row_id: int) -> str:
        user = db.session.get(User, row_id)
        if user is None:
            abort(404)
        may_reset = self.may("reset_mfa") and user.id != current_user.id and (
            user.totp_ciphertext is not None or recovery_codes_left(user.id) > 0)
        return self.render("admin/user_detail.html", user=user, may_reset=may_reset,
                           recovery_codes_left=recovery_codes_left(user.id), may_edit=self.can_edit)

    @expose("/<int:row_id>/reset-second-factor", methods=("POST",))
    def reset_second_factor(self, row_id: int) -> Response:
        form = ReasonForm()
        back = redirect(url_for(".detail", row_id=row_id))
        if not form.validate_on_submit():
            flash("Please give a reason for the reset.", "error")
            return back
        try:
            reset_second_factor(row_id, current_user.id, form.reason.data)
        except AccountError as error:
            db.session.rollback()
            flash(error.message, "error")
            return back
        db.session.commit()
        flash("The second factor is reset and their sessions have ended; they set it up again "
              "at their next login.", "success")
        return back
