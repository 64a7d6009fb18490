"""`GET /metrics`: Prometheus text format, for the operator's scraper only.

Who may read it (README "Monitoring"):

- with ``METRICS_TOKEN`` set, a request bearing ``Authorization: Bearer <token>``
  (compared in constant time), from anywhere; anything else gets 401;
- without it, in development and testing, a request from a loopback or private
  address; in production, nobody (403 naming the variable): behind a reverse proxy
  every visitor can look like a private address, so an address alone proves nothing.

It sets no cookie and needs no login; GET is outside CSRF, and no rate limit applies.
"""
from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from app.observability.metrics import process_registry
from app.observability.state import StateCollector

bp = Blueprint("observability", __name__)


def _plain(text: str, status: int, **headers: str) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain", headers=headers)


def _is_private(address: str | None) -> bool:
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return parsed.is_loopback or parsed.is_private


def refusal() -> Response | None:
    """Why this request may not read the metrics, as the answer to give; None if it may."""
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(), token.encode()):
            return None
        return _plain("a valid bearer token is required", 401, **{"WWW-Authenticate": 'Bearer realm="metrics"'})
    if current_app.config["APP_ENV"] == "production":
        return _plain("metrics are off: set METRICS_TOKEN to scrape them", 403)
    if not _is_private(request.remote_addr):
        return _plain("metrics are served to private addresses only (or set METRICS_TOKEN)", 403)
    return None


@bp.route("/metrics")
def metrics() -> Response:
    refused = refusal()
    if refused is not None:
        return refused
    state = CollectorRegistry()
    state.register(StateCollector())
    body = generate_latest(process_registry()) + generate_latest(state)
    return Response(body, status=200, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
