from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from app.accounts import services
from app.accounts.forms import EmptyForm, LoginForm, RegisterForm, TokenForm
from app.extensions import db

bp = Blueprint("accounts", __name__)


def safe_next(target: str | None) -> str:
    """Only a local path may follow a login; anything else goes to the catalog."""
    if target:
        parts = urlsplit(target)
        is_local_path = not parts.scheme and not parts.netloc and target.startswith("/")
        if is_local_path and not target.startswith("//") and "\\" not in target:
            return target
    return url_for("catalog.index")


@bp.route("/register", methods=["GET", "POST"])
def register() -> str | Response:
    if current_user.is_authenticated:
        return redirect(url_for("catalog.index"))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user_id = services.create_user(
                form.email.data, form.password.data, form.display_name.data or ""
            )
        except services.AccountError as error:
            form.email.errors.append(error.message)
        else:
            db.session.commit()
            login_user(services.load_user(str(user_id)))
            flash("Welcome! Your account is ready.", "success")
            return redirect(url_for("catalog.index"))
    return render_template("accounts/register.html", form=form)


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if form.validate_on_submit():
        user = services.authenticate(form.email.data, form.password.data)
        if user is None:
            form.password.errors.append("Wrong e-mail or password.")
        else:
            login_user(user)
            return redirect(safe_next(form.next.data))
    return render_template("accounts/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    if EmptyForm().validate_on_submit():
        logout_user()
        flash("You are logged out.", "info")
    return redirect(url_for("catalog.index"))


@bp.route("/account")
@login_required
def account() -> str:
    return render_template(
        "accounts/account.html",
        tokens=services.active_tokens(current_user.id),
        token_form=TokenForm(),
        revoke_form=EmptyForm(),
        new_token=None,
    )


@bp.route("/account/tokens", methods=["POST"])
@login_required
def create_token() -> str | Response:
    form = TokenForm()
    if not form.validate_on_submit():
        flash("Give the token a name.", "error")
        return redirect(url_for("accounts.account"))
    token = services.create_token(current_user.id, form.name.data)
    db.session.commit()
    return render_template(
        "accounts/account.html",
        tokens=services.active_tokens(current_user.id),
        token_form=TokenForm(formdata=None),
        revoke_form=EmptyForm(),
        new_token=token,
    )


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke_token(token_id: int) -> Response:
    if EmptyForm().validate_on_submit() and services.revoke_token(current_user.id, token_id):
        db.session.commit()
        flash("The token is revoked.", "success")
    else:
        flash("No such token.", "error")
    return redirect(url_for("accounts.account"))
