"""JSON API v1 for app clients: bearer tokens, `Idempotency-Key`, errors with a stable code."""
from __future__ import annotations

import functools
import hashlib
import json
from typing import Any, Callable

from flask import Blueprint, g, jsonify, request
from werkzeug.wrappers import Response

from app.accounts.models import User
from app.accounts.services import user_for_token
from app.cart.coupons import CouponError
from app.catalog.services import published_courses
from app.checkout.checkout_flow import checkout_request
from app.checkout.models import Order
from app.checkout.services import (
    CheckoutError,
    OrderRequest,
    current_attempt,
    order_for_user,
    order_with_lines,
)
from app.checkout.status import order_status
from app.extensions import db

# Row ids are 32-bit integers in both databases; a larger id names no row.
MAX_ROW_ID = 2**31 - 1

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_IDEMPOTENCY_KEY = 100


def error(code: str, message: str, status: int) -> tuple[Response, int]:
    return jsonify(code=code, message=message), status


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def token_user() -> User | None:
    """The user of this request's bearer token, looked up once per request (the rate
    limit on QR codes asks before the view does)."""
    if "token_user" not in g:
        token = bearer_token()
        g.token_user = user_for_token(token) if token else None
    return g.token_user


def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = token_user()
        if user is None:
            response, status = error("unauthorized", "A valid bearer token is required.", 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
            return response, status
        g.api_user = user
        return view(*args, **kwargs)

    return wrapper


@bp.route("/courses")
def courses() -> Response:
    return jsonify(
        courses=[
            {
                "id": course.id,
                "slug": course.slug,
                "title_zh": course.title_zh,
                "title_en": course.title_en,
                "instructor": course.instructor.name,
                "price_fen": course.price_fen,
                "currency": "CNY",
            }
            for course in published_courses()
        ]
    )


def _encodable(text: str) -> bool:
    """False for strings with lone surrogates (JSON ``"\\ud800"``): no column takes them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_order_body() -> OrderRequest | tuple[Response, int]:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser recurses
        body = None
    if not isinstance(body, dict):
        return error("invalid_json", "The body must be a JSON object.", 400)
    course_ids = body.get("course_ids")
    if (
        not isinstance(course_ids, list)
        or not course_ids
        or not all(isinstance(c, int) and not isinstance(c, bool) and 0 < c <= MAX_ROW_ID for c in course_ids)
    ):
        return error("invalid_course_ids", "course_ids must be a non-empty list of ids.", 422)
    coupon = body.get("coupon")
    if coupon is not None and (not isinstance(coupon, str) or len(coupon) > 40 or not _encodable(coupon)):
        return error("invalid_coupon", "coupon must be a string of at most 40 characters.", 422)
    channel = body.get("channel", "alipay")
    if not isinstance(channel, str) or not _encodable(channel):
        return error("invalid_channel", "channel must be a string.", 422)
    # The prepaid balance (app/wallet): "full" pays from it alone, "part" as much as it holds.
    use_balance = body.get("use_balance", "none")
    if use_balance not in ("none", "full", "part"):
        return error("invalid_use_balance", 'use_balance must be "none", "full" or "part".', 422)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        return error("invalid_idempotency_key", "Idempotency-Key must be 1-100 characters.", 400)
    fingerprinted = {"course_ids": course_ids, "coupon": (coupon or "").strip().upper(), "channel": channel}
    if use_balance != "none":  # absent, the fingerprint stays what it was before the balance
        fingerprinted["use_balance"] = use_balance
    canonical = json.dumps(fingerprinted, sort_keys=True)
    return OrderRequest(
        user_id=g.api_user.id,
        course_ids=tuple(course_ids),
        coupon_code=coupon or None,
        channel=channel,
        idempotency_key=key,
        fingerprint=hashlib.sha256(canonical.encode()).hexdigest() if key else None,
        use_balance=use_balance,
    )


def order_json(order: Order) -> dict[str, Any]:
    attempt = current_attempt(order.id)
    status = order_status(order)
    return {
        "order_no": order.order_no,
        "status": order.status,
        "expired": status["expired"],
        "currency": order.currency,
        "subtotal_fen": order.subtotal_fen,
        "discount_fen": order.discount_fen,
        "tax_fen": order.tax_fen,
        "total_fen": order.total_fen,
        # What the prepaid balance paid of the total; the channel collects the rest.
        "wallet_paid_fen": order.wallet_paid_fen,
        "wallet_bonus_fen": order.wallet_bonus_fen,
        "coupon": order.coupon_code,
        "expires_at": status["expires_at"],
        "channel": attempt.channel if attempt else None,
        "qr_code": attempt.qr_code if attempt and order.status == "pending" else None,
        "lines": [
            {
                "course_id": line.course_id,
                "title": line.title,
                "list_price_fen": line.list_price_fen,
                "discount_fen": line.discount_fen,
                "tax_fen": line.tax_fen,
                "amount_fen": line.amount_fen,
            }
            for line in order.lines
        ],
    }


@bp.route("/orders", methods=["POST"])
@token_required
def create_order() -> tuple[Response, int]:
    parsed = _parse_order_body()
    if isinstance(parsed, tuple):
        return parsed
    try:
        order_id = checkout_request(parsed)
    except (CheckoutError, CouponError) as failure:
        db.session.rollback()
        status = 409 if failure.code in ("course_owned", "pending_order") else 422
        return error(failure.code, failure.message, status)
    return jsonify(order_json(order_with_lines(order_id))), 201


@bp.route("/orders/<order_no>")
@token_required
def get_order(order_no: str) -> Response | tuple[Response, int]:
    order = order_for_user(order_no, g.api_user.id)
    if order is None:
        return error("order_not_found", "No such order.", 404)
    return jsonify(order_json(order))
