"""Error pages and JSON errors: nothing a user sends produces a bare 500."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.extensions import db

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A step a service refuses; ``code`` is stable (for JSON and tests), ``message`` is
    for the person who tried, and nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def wants_json() -> bool:
    """Whether the request came from a program (API, callbacks, the poller), not a page."""
    return request.path.startswith(("/api/", "/notify/")) or request.path.endswith("/status")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):  # noqa: ANN202
        return render_template("errors/error.html", code=400, message="The form expired. Please go back and try again."), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):  # noqa: ANN202
        if wants_json():
            code = (error.name or "error").lower().replace(" ", "_")
            return jsonify(code=code, message=error.description), error.code
        return render_template("errors/error.html", code=error.code, message=error.description), error.code

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):  # noqa: ANN202
        db.session.rollback()
        log.exception("unhandled error on %s", request.path)
        if wants_json():
            return jsonify(code="internal_error", message="Something went wrong on our side."), 500
        return render_template("errors/error.html", code=500, message="Something went wrong on our side."), 500
