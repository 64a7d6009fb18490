"""The language switch in every page's header."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, request
from werkzeug.wrappers import Response

from app.accounts.forms import EmptyForm
from app.accounts.views import safe_next
from app.i18n import LANGUAGE_COOKIE, LANGUAGES

bp = Blueprint("language", __name__)

ONE_YEAR = 365 * 24 * 3600


@bp.route("/language", methods=["POST"])
def choose() -> Response:
    """Keep the chosen language in a cookie and go back to the page it was chosen on.
    An unknown language or a form without its CSRF token changes nothing."""
    response = redirect(safe_next(request.form.get("next")))
    language = request.form.get("lang", "")
    if EmptyForm().validate_on_submit() and language in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, language, max_age=ONE_YEAR, httponly=True, samesite="Lax",
            secure=current_app.config["SESSION_COOKIE_SECURE"],
        )
    return response
