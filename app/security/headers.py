"""Security headers on every response (DESIGN.md §10).

The policy allows scripts, styles, fonts and images from this origin only: no inline
script, no inline style (neither ``<style>`` nor ``style=``), no event-handler
attributes, no ``javascript:`` URLs and no third-party origin. Our templates and the
Flask-Admin templates we override under ``templates/admin/`` are written for it;
``tests/test_security_headers.py`` renders the pages and checks both.

``img-src data:`` is there because Bootstrap's stylesheet draws its form controls and
the navbar toggler with ``data:`` SVG images; a data image cannot run script.
"""
from __future__ import annotations

from flask import Flask, Response, current_app, request

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HSTS = "max-age=31536000; includeSubDomains"
# Order numbers are in our URLs: no other site learns them from a Referer.
REFERRER_POLICY = "same-origin"


def _served_over_https() -> bool:
    return request.is_secure or current_app.config.get("PUBLIC_BASE_URL", "").startswith("https://")


# On every response; Strict-Transport-Security on those served over https.
ALWAYS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", REFERRER_POLICY),
)


def add_security_headers(response: Response) -> Response:
    """Set the headers unless a view chose its own (it sets them on its response)."""
    headers = response.headers
    # One pass over the headers there are: `Headers.setdefault` scans them three times
    # per name and raises a KeyError for each missing one, on every response (the status
    # poll's included, the site's most frequent request).
    present = {name.lower() for name in headers.keys()}
    for name, value in ALWAYS:
        if name.lower() not in present:
            headers.add(name, value)
    if "strict-transport-security" not in present and _served_over_https():
        headers.add("Strict-Transport-Security", HSTS)
    return response


def init_security_headers(app: Flask) -> None:
    app.after_request(add_security_headers)
