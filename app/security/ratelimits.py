"""Rate limits (Flask-Limiter): which routes are limited, per what, in one table.

What is limited is what an attacker repeats: passwords, tried from one network or at
one account; accounts, made in bulk; coupon codes, guessed; QR codes, each of which is
a request to the payment channel; and API calls, per token. The amounts are settings
(``RATE_LIMIT_DEFAULTS`` in app/config.py). Over a limit the answer is 429 with
``Retry-After``: a page that says how long to wait, or JSON for the API and the poller.

Each app gets a Limiter of its own, as each gets its own Flask-Admin: Flask-Limiter
keeps the storage and its settings on the Limiter object, so one shared by several apps
(the tests make many) would count for all of them in whichever storage came last. The
limits are therefore put on the registered views here rather than by decorators where
the views are written.

Counts live in Redis when the site has one, so every worker counts together; in memory
in the embedded default. If Redis fails, each process counts in memory until it is back:
a Redis outage must not stop people signing in or paying.

Keys never hold a secret or an address book: a submitted e-mail and a bearer token are
counted under their SHA-256, since Redis keys show up in monitoring and in the logs of
Flask-Limiter itself.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Callable

from flask import Flask, Response, jsonify, request
from flask_babel import LazyString
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_limiter import Limiter, RateLimitExceeded
from flask_login import current_user

from app.accounts.services import normalize_email
from app.api.views import bearer_token, token_user
from app.errors import error_page, wants_json


def by_address() -> str:
    """The visitor's network address (behind TRUSTED_PROXIES, the forwarded one)."""
    return f"address:{request.remote_addr or 'unknown'}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def by_submitted_account() -> str:
    """The account a login or registration form names, whoever sends it."""
    email = normalize_email(request.form.get("email", ""))
    return f"account:{_digest(email)}" if email else by_address()


def by_user() -> str:
    """The signed-in user; an anonymous request (about to be sent to log in) by address."""
    return f"user:{current_user.id}" if current_user.is_authenticated else by_address()


def by_payer() -> str:
    """Whoever asks for a QR code: the signed-in user, or the API token's user, so a
    learner's budget is one however many tokens they make."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    user = token_user()
    return f"user:{user.id}" if user is not None else by_address()


def by_token() -> str:
    token = bearer_token()
    return f"token:{_digest(token)}" if token else by_address()


@dataclass(frozen=True)
class Guard:
    """One limit: the setting holding its amounts, whose requests count together, the
    sentence a visitor over it reads, and, for a budget several routes share, a scope."""

    setting: str
    key: Callable[[], str]
    message: LazyString  # translated when a visitor over the limit reads it
    scope: str | None = None


LOGIN_ADDRESS = Guard("RATELIMIT_LOGIN_PER_ADDRESS", by_address,
                      _l("Too many sign-in attempts from your network."))
LOGIN_ACCOUNT = Guard("RATELIMIT_LOGIN_PER_ACCOUNT", by_submitted_account,
                      _l("Too many sign-in attempts for this account."))
REGISTER_ADDRESS = Guard("RATELIMIT_REGISTER_PER_ADDRESS", by_address,
                         _l("Too many accounts registered from your network."))
REGISTER_ACCOUNT = Guard("RATELIMIT_REGISTER_PER_ACCOUNT", by_submitted_account,
                         _l("Too many registrations for this e-mail address."))
COUPON = Guard("RATELIMIT_COUPON_PER_USER", by_user, _l("Too many coupon codes tried."))
# Checkout, a new QR code, another channel, an API order, a top-up, a renewal and a
# membership each ask the channel for a QR code: one budget for all of them.
QR_CODE = Guard("RATELIMIT_QR_PER_USER", by_payer, _l("Too many payment QR codes requested."), scope="qr-code")
RECEIPT_VERIFY = Guard("RATELIMIT_RECEIPT_VERIFY_PER_ADDRESS", by_address,
                       _l("Too many receipts checked from your network."))
API = Guard("RATELIMIT_API_PER_TOKEN", by_token, _l("Too many API requests with this token."), scope="api")

# Endpoint → its limits; they count form submissions (POST) only.
ROUTE_LIMITS: dict[str, tuple[Guard, ...]] = {
    "accounts.login": (LOGIN_ADDRESS, LOGIN_ACCOUNT),
    "accounts.register": (REGISTER_ADDRESS, REGISTER_ACCOUNT),
    "cart.apply_coupon": (COUPON,),
    "cart.checkout": (QR_CODE,),
    "checkout.retry": (QR_CODE,),
    "checkout.switch": (QR_CODE,),
    "api.create_order": (QR_CODE,),
    "wallet.topup": (QR_CODE,),
    "renewal.renew": (QR_CODE,),
    "membership.buy": (QR_CODE,),
    "receipts.verify": (RECEIPT_VERIFY,),
}
# Blueprint → one budget for every request to it, whatever the route and method.
BLUEPRINT_LIMITS: dict[str, Guard] = {"api": API}
# Endpoints no limit applies to, asked so often that even finding that out for each
# request shows in their throughput (about 5 % of the callback view's time): the pay
# page's status poll (every second or two per waiting learner) and the channels' payment
# callbacks (a burst from a few channel addresses; a forged one costs a signature check
# and stores nothing). Flask-Limiter's check is skipped for them altogether.
UNLIMITED_ENDPOINTS = frozenset({"checkout.status", "payments.notify"})


class SiteLimiter(Limiter):
    """Flask-Limiter, but for UNLIMITED_ENDPOINTS its before-request check does nothing
    (it would resolve the route's limits, find none, and record that per request).

    `_check_request_limit` is the method Flask-Limiter (4.1) registers as its
    before-request hook; were it renamed, the check would simply run again."""

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        if request.endpoint in UNLIMITED_ENDPOINTS:
            return
        super()._check_request_limit(callable_name, in_middleware)


def init_rate_limits(app: Flask) -> Limiter:
    if any(endpoint in ROUTE_LIMITS or endpoint.partition(".")[0] in BLUEPRINT_LIMITS
           for endpoint in UNLIMITED_ENDPOINTS):
        raise RuntimeError("an endpoint in UNLIMITED_ENDPOINTS has a limit")
    limiter = SiteLimiter(
        key_func=by_address,
        # The moving window counts exactly "N in any period": a fixed window lets 2 N
        # through across a boundary, which matters at five passwords a minute.
        strategy="moving-window",
        swallow_errors=True,
        in_memory_fallback_enabled=True,
    )
    limiter.init_app(app)
    for endpoint, guards in ROUTE_LIMITS.items():
        view = app.view_functions[endpoint]
        for guard in guards:
            view = _limit(limiter, app, guard, methods=["POST"])(view)
        app.view_functions[endpoint] = view
    for name, guard in BLUEPRINT_LIMITS.items():
        _limit(limiter, app, guard, methods=None)(app.blueprints[name])
    app.register_error_handler(RateLimitExceeded, lambda error: too_many_requests(limiter, error))
    app.extensions["cashier.limiter"] = limiter
    return limiter


def _limit(limiter: Limiter, app: Flask, guard: Guard, methods: list[str] | None):  # noqa: ANN202
    """The Flask-Limiter decorator for ``guard``: limits without a scope count each
    route apart, so a budget several routes share (a whole blueprint's) has one."""
    amounts = app.config[guard.setting]
    # A callable, read when a limit is hit: Flask-Limiter hashes its limits, and hashing a
    # lazy string would translate it with no visitor to translate for.
    message = lambda: str(guard.message)  # noqa: E731
    if guard.scope:
        return limiter.shared_limit(amounts, guard.scope, key_func=guard.key, methods=methods,
                                    error_message=message)
    return limiter.limit(amounts, key_func=guard.key, methods=methods, error_message=message)


def too_many_requests(limiter: Limiter, error: RateLimitExceeded) -> tuple[Response | str, int, dict]:
    """429 with ``Retry-After``, and a sentence saying what was limited and how long to wait."""
    breached = limiter.current_limit
    reset_at = breached.reset_at if breached is not None else time.time() + 60
    wait = max(1, math.ceil(reset_at - time.time()))
    message = _("%(limit)s Please wait %(duration)s and try again.", limit=error.description, duration=_duration(wait))
    headers = {"Retry-After": str(wait)}
    if wants_json():
        return jsonify(code="too_many_requests", message=message, retry_after=wait), 429, headers
    return error_page(429, message), 429, headers


def _duration(seconds: int) -> str:
    if seconds < 90:
        return ngettext("%(num)d second", "%(num)d seconds", seconds)
    return ngettext("%(num)d minute", "%(num)d minutes", math.ceil(seconds / 60))
