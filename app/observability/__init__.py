"""Monitoring: request ids and structured logs, Prometheus metrics, `GET /metrics`.

README "Monitoring" lists the metrics and how to scrape them.
"""
from __future__ import annotations

from flask import Flask


def init_observability(app: Flask) -> None:
    from app.observability.logs import configure_logging
    from app.observability.metrics import metrics
    from app.observability.requests import init_request_hooks
    from app.observability.views import bp

    app.extensions["cashier.log_handler"] = configure_logging(app.config, app.name)
    metrics()  # registered now, so a scrape lists every family before its first sample
    init_request_hooks(app)
    app.register_blueprint(bp)
