"""`GET /healthz`: database and Redis reachability, for load balancers."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from app.extensions import db
from app.jobs.queues import redis_connection

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz():  # noqa: ANN201
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:  # noqa: BLE001 - any failure means unreachable
        checks["database"] = f"error: {type(error).__name__}"
    finally:
        db.session.rollback()
    if current_app.config.get("REDIS_URL"):
        try:
            redis_connection().ping()
            checks["redis"] = "ok"
        except Exception as error:  # noqa: BLE001
            checks["redis"] = f"error: {type(error).__name__}"
    else:
        checks["redis"] = "not configured (jobs run inline)"
    healthy = all(value == "ok" or value.startswith("not configured") for value in checks.values())
    return jsonify(status="ok" if healthy else "error", checks=checks), 200 if healthy else 503
