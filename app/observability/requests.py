"""Per request: its id (from a valid ``X-Request-Id`` or new), and its metrics."""
from __future__ import annotations

import time

from flask import Flask, Response, g, request

from app.observability.context import bind_request_id, new_request_id, unbind_request_id, valid_request_id
from app.observability.metrics import UNMATCHED_ROUTE, observe_request

REQUEST_ID_HEADER = "X-Request-Id"


def _start() -> None:
    g.request_id = valid_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_request_id()
    g.request_id_token = bind_request_id(g.request_id)
    g.request_started = time.perf_counter()


def _finish(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    if started is not None:
        # The URL rule, never the path: one series per route, whatever order numbers
        # or probes arrive.
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        observe_request(route, request.method, response.status_code, time.perf_counter() - started)
    return response


def _unbind(error: BaseException | None) -> None:  # noqa: ARG001 - Flask passes it
    token = g.pop("request_id_token", None)
    if token is not None:
        unbind_request_id(token)


def init_request_hooks(app: Flask) -> None:
    """First of the before-request hooks, so an earlier refusal (a rate limit, a
    login redirect) still has its id and is counted; the after-request hook runs for
    error pages too, a 500 included."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
    app.teardown_request(_unbind)
