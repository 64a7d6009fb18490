"""Error pages and JSON errors: nothing a user sends produces a bare 500."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_babel import LazyString
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.extensions import db

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A step a service refuses; ``code`` is stable (for JSON and tests), ``message`` is
    for the person who tried, and nothing was changed.

    Services also run outside a request (jobs, the CLI, the tests), where there is no
    visitor whose language to choose, so they build the message with ``lazy_gettext``:
    it is translated when read, in the reader's request.
    """

    def __init__(self, code: str, message: str | LazyString) -> None:
        super().__init__(message)
        self.code = code
        self._message = message

    @property
    def message(self) -> str:
        # A plain string: a lazy one flashed would come back from the session as markup.
        return str(self._message)


# What each error page says; Werkzeug's own descriptions are in English only.
ERROR_PAGES: dict[int, tuple[LazyString, LazyString]] = {
    400: (_l("Bad request"), _l("The request could not be understood. Please go back and try again.")),
    401: (_l("Please log in"), _l("Log in to see this page.")),
    403: (_l("Access denied"), _l("You do not have permission to see this page.")),
    404: (_l("Page not found"), _l("This page does not exist. The link may be out of date, or the address mistyped.")),
    405: (_l("Not allowed"), _l("This page cannot be used that way.")),
    413: (_l("Too large"), _l("What you sent is too large.")),
    429: (_l("Too many requests"), _l("You have made too many requests. Please wait a moment and try again.")),
    500: (_l("Something went wrong"), _l("Something went wrong on our side.")),
}


def error_page(code: int, message: str | None = None) -> str:
    """The error page for HTTP status ``code``: its title, and ``message`` or the sentence
    the code usually gets."""
    title, usual = ERROR_PAGES.get(code, ERROR_PAGES[400 if code < 500 else 500])
    return render_template("errors/error.html", code=code, title=title, message=message or usual)


def wants_json() -> bool:
    """Whether the request came from a program (API, callbacks, the poller), not a page."""
    return request.path.startswith(("/api/", "/notify/")) or request.path.endswith("/status")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):  # noqa: ANN202
        return error_page(400, _("The form expired. Please go back and try again.")), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):  # noqa: ANN202
        if wants_json():
            code = (error.name or "error").lower().replace(" ", "_")
            return jsonify(code=code, message=error.description), error.code
        return error_page(error.code or 500), error.code

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):  # noqa: ANN202
        db.session.rollback()
        log.exception("unhandled error on %s", request.path)
        if wants_json():
            return jsonify(code="internal_error", message="Something went wrong on our side."), 500
        return error_page(500), 500
