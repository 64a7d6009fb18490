"""Registration, login (with the staff second factor), logout and the account page."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.accounts import mfa, services, signin
from app.accounts.forms import EmptyForm, LoginForm, RegisterForm, SecondFactorForm, TokenForm
from app.accounts.models import User
from app.checkout.qr import qr_svg
from app.extensions import db

bp = Blueprint("accounts", __name__)

# What a password-only staff session may still reach: the second-factor pages, logging
# in and out, the language switch, and the parts of the app that never serve the
# signed-in user (the token API, channel callbacks, the emulator standing in for the
# channels, the health check and the metrics).
OPEN_ENDPOINTS = frozenset({"accounts.enrol_second_factor", "accounts.verify_second_factor",
                            "accounts.login", "accounts.logout", "language.choose", "static"})
OPEN_BLUEPRINTS = frozenset({"api", "payments", "gateway", "health", "observability"})
# Endpoints that refuse a password-only staff session themselves, so this hook need not
# load the user for them. Only the status poll: the pay page asks it every second or two
# per waiting learner, and it answers from one statement that checks the user with the
# order (app/checkout/status_poll.py); a staff member without the second factor gets a
# JSON 401 there, which a poller can read, instead of this hook's redirect.
SELF_GUARDED_ENDPOINTS = frozenset({"checkout.status"})


def safe_next(target: str | None, default: str | None = None) -> str:
    r"""Only a local path may follow a login; anything else goes to ``default`` (the catalog).

    Refused: another host (``//evil``, ``https://evil``), a scheme (``javascript:``), a
    backslash (browsers read ``/\evil`` as ``//evil``), and spaces and control characters
    (browsers drop a tab or newline inside a URL, so ``/<tab>/evil`` is ``//evil`` too).
    """
    if target:
        parts = urlsplit(target)
        is_local_path = not parts.scheme and not parts.netloc and target.startswith("/")
        plain = all(" " < ch != "\x7f" for ch in target) and "\\" not in target
        if is_local_path and plain and not target.startswith("//"):
            return target
    return default or url_for("catalog.index")


def landing(user: User) -> str:
    """Where a login without a ``next`` ends: the back office for staff."""
    return url_for("admin.index") if user.is_staff else url_for("catalog.index")


@bp.before_app_request
def hold_staff_until_second_factor() -> Response | None:
    """A password-only staff session reaches the second-factor pages and nothing else:
    a staff password alone opens neither the back office nor the learner pages, nor
    the account page where API tokens are made."""
    if (request.endpoint is None or request.endpoint in OPEN_ENDPOINTS
            or request.endpoint in SELF_GUARDED_ENDPOINTS
            or request.blueprint in OPEN_BLUEPRINTS or not signin.needs_second_factor()):
        return None
    return redirect(signin.second_factor_url(request.full_path if request.query_string else request.path))


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
            signin.begin(services.get_user(user_id))
            flash(_("Welcome! Your account is ready."), "success")
            return redirect(url_for("catalog.index"))
    return render_template("accounts/register.html", form=form)


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if form.validate_on_submit():
        try:
            user = services.authenticate(form.email.data, form.password.data)
        except services.AccountError as error:
            user, refusal = None, error.message
        else:
            refusal = _("Wrong e-mail or password.")
        db.session.commit()  # the count of wrong passwords, or its reset
        if user is None:
            form.password.errors.append(refusal)
        else:
            signin.begin(user)
            target = safe_next(form.next.data, landing(user))
            if user.is_staff:
                return redirect(signin.second_factor_url(target))
            return redirect(target)
    return render_template("accounts/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    if EmptyForm().validate_on_submit():
        signin.end()
        db.session.commit()
        flash(_("You are logged out."), "info")
    return redirect(url_for("catalog.index"))


def _staff_only() -> None:
    """Learners and instructors never have a second factor: these pages are not theirs."""
    if not mfa.may_enrol(current_user):
        abort(403)


def _no_store(page: str) -> Response:
    """A page with a secret on it: no cache keeps a copy."""
    response = make_response(page)
    response.headers["Cache-Control"] = "no-store"
    return response


def _second_factor_form() -> tuple[SecondFactorForm, str]:
    """The code form of a second-factor page (staff only), and where to go after it."""
    _staff_only()
    form = SecondFactorForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    return form, safe_next(form.next.data, landing(current_user))


@bp.route("/second-factor/setup", methods=["GET", "POST"])
@login_required
def enrol_second_factor() -> Response:
    form, target = _second_factor_form()
    if current_user.mfa_enrolled:
        return redirect(signin.second_factor_url(target))
    if form.validate_on_submit():
        try:
            codes = mfa.confirm_enrolment(current_user.id, form.code.data)
        except services.AccountError as error:
            db.session.rollback()
            form.code.errors.append(error.message)
        else:
            db.session.commit()
            signin.mark_second_factor()
            return _no_store(render_template("accounts/recovery_codes.html", codes=codes, next_url=target))
    try:
        secret = mfa.offered_secret(current_user.id)
    except services.AccountError as error:
        db.session.rollback()
        flash(error.message, "error")
        return _no_store(render_template("accounts/second_factor_setup.html", form=form, secret=None, qr=None))
    db.session.commit()
    return _no_store(render_template(
        "accounts/second_factor_setup.html", form=form, qr=qr_svg(mfa.provisioning_uri(current_user, secret)),
        secret=" ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
    ))


@bp.route("/second-factor", methods=["GET", "POST"])
@login_required
def verify_second_factor() -> str | Response:
    form, target = _second_factor_form()
    if not current_user.mfa_enrolled:
        return redirect(signin.second_factor_url(target))
    if request.method == "GET" and signin.second_factor_verified():
        return redirect(target)
    if form.validate_on_submit():
        try:
            check = mfa.verify_second_factor(current_user.id, form.code.data)
        except services.AccountError as error:
            db.session.rollback()
            form.code.errors.append(error.message)
        else:
            db.session.commit()  # the last step, a used recovery code or a failure count
            if check.accepted:
                signin.mark_second_factor()
                if check.method == "recovery":
                    flash(_("You signed in with a recovery code; %(left)s left. If your phone is "
                            "lost, ask an admin to reset your second factor.",
                            left=check.recovery_codes_left), "info")
                return redirect(target)
            form.code.errors.append(str(check.message))
    return render_template("accounts/second_factor_verify.html", form=form)


@bp.route("/account")
@login_required
def account() -> str:
    return render_template(
        "accounts/account.html",
        tokens=services.active_tokens(current_user.id),
        token_form=TokenForm(),
        revoke_form=EmptyForm(),
        new_token=None,
        recovery_codes_left=mfa.recovery_codes_left(current_user.id),
    )


@bp.route("/account/tokens", methods=["POST"])
@login_required
def create_token() -> str | Response:
    form = TokenForm()
    if not form.validate_on_submit():
        flash(_("Give the token a name."), "error")
        return redirect(url_for("accounts.account"))
    token = services.create_token(current_user.id, form.name.data)
    db.session.commit()
    return render_template(
        "accounts/account.html",
        tokens=services.active_tokens(current_user.id),
        token_form=TokenForm(formdata=None),
        revoke_form=EmptyForm(),
        new_token=token,
        recovery_codes_left=mfa.recovery_codes_left(current_user.id),
    )


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke_token(token_id: int) -> Response:
    if EmptyForm().validate_on_submit() and services.revoke_token(current_user.id, token_id):
        db.session.commit()
        flash(_("The token is revoked."), "success")
    else:
        flash(_("No such token."), "error")
    return redirect(url_for("accounts.account"))
