from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.accounts.forms import EmptyForm
from app.checkout import services
from app.checkout.checkout_flow import retry_qr
from app.checkout.models import Order
from app.checkout.qr import qr_svg
from app.checkout.status import order_status
from app.extensions import db

bp = Blueprint("checkout", __name__)


def _my_order_or_404(order_no: str) -> Order:
    order = services.order_for_user(order_no, current_user.id)
    if order is None:
        abort(404)
    return order


@bp.route("/orders")
@login_required
def my_orders() -> str:
    return render_template("checkout/orders.html", orders=services.my_orders(current_user.id))


@bp.route("/orders/<order_no>/pay")
@login_required
def pay(order_no: str) -> str:
    order = _my_order_or_404(order_no)
    attempt = services.current_attempt(order.id)
    status = order_status(order)
    showable = order.status == "pending" and not status["expired"]
    qr = qr_svg(attempt.qr_code) if showable and attempt and attempt.qr_code else None
    return render_template(
        "checkout/pay.html", order=order, attempt=attempt, qr=qr, status=status, form=EmptyForm()
    )


@bp.route("/orders/<order_no>/qr", methods=["POST"])
@login_required
def retry(order_no: str) -> Response:
    order = _my_order_or_404(order_no)
    if EmptyForm().validate_on_submit():
        retry_qr(order.id)
        attempt = services.current_attempt(order.id)
        if attempt is None or attempt.qr_code is None:
            flash("The payment channel did not answer. Please try again shortly.", "error")
    return redirect(url_for("checkout.pay", order_no=order_no))


@bp.route("/orders/<order_no>/status")
def status(order_no: str) -> tuple[Response, int] | Response:
    # JSON for the poller: no login redirect, and someone else's order is not found.
    if not current_user.is_authenticated:
        return jsonify(code="login_required", message="Log in to see this order."), 401
    order = services.order_for_user(order_no, current_user.id)
    if order is None:
        return jsonify(code="order_not_found", message="No such order."), 404
    body = order_status(order)
    db.session.rollback()  # read-only: release SQLite's lock at once
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response
