from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.accounts.forms import EmptyForm
from app.checkout import services, status_poll
from app.checkout.checkout_flow import change_channel, retry_qr
from app.checkout.forms import ChannelForm, RefundRequestForm
from app.checkout.models import Order
from app.checkout.qr import qr_svg
from app.checkout.status import order_status
from app.extensions import db
from app.jobs import enqueue
from app.jobs.periodic import claim_query
from app.payments import refund_workflow
from app.payments.refund_workflow import refund_policy, refunds_by_order
from app.payments.registry import LABELS, channel_options
from app.receipts.services import receipts_by_order
from app.timeutil import now

bp = Blueprint("checkout", __name__)


def _my_order_or_404(order_no: str, with_lines: bool = False) -> Order:
    order = services.order_for_user(order_no, current_user.id, with_lines)
    if order is None:
        abort(404)
    return order


@bp.route("/orders")
@login_required
def my_orders() -> str:
    orders = services.my_orders(current_user.id)
    return render_template(
        "checkout/orders.html", orders=orders, refunds=refunds_by_order([o.id for o in orders]),
        receipts=receipts_by_order([o.id for o in orders]),
    )


@bp.route("/orders/<order_no>/refund", methods=["GET", "POST"])
@login_required
def request_refund(order_no: str) -> str | Response:
    """The refund policy of one order, and the learner's request."""
    order = _my_order_or_404(order_no)
    policy = refund_policy(order.id)
    form = RefundRequestForm()
    form.offer(policy)
    if policy.refundable and form.validate_on_submit():
        try:
            refund_workflow.request_refund(order.id, current_user.id, form.lines.data or None, form.reason.data)
        except refund_workflow.RefundError as error:
            db.session.rollback()
            flash(error.message, "error")
        else:
            db.session.commit()
            flash(_("Your refund request was sent. We will let you know the decision."), "success")
            return redirect(url_for("checkout.my_orders"))
    elif form.is_submitted() and form.errors:
        # A course no longer offered (refunded meanwhile, say from another tab) fails the
        # lines field; say that, not that the reason is missing.
        flash(_("Choose courses of this order that can be refunded.") if form.lines.errors
              else _("Please give a reason for the refund."), "error")
    return render_template("checkout/refund.html", order=order, policy=policy, form=form)


@bp.route("/orders/<order_no>/pay")
@login_required
def pay(order_no: str) -> str:
    order = _my_order_or_404(order_no, with_lines=True)
    attempt = services.current_attempt(order.id)
    status = order_status(order)
    showable = order.status == "pending" and not status["expired"]
    live = showable and attempt is not None and attempt.status == "created"
    qr = qr_svg(attempt.qr_code) if live and attempt.qr_code else None
    others = channel_options(order.total_fen, excluding=attempt.channel if attempt else None) if showable else []
    page = render_template(
        "checkout/pay.html", order=order, attempt=attempt, qr=qr, status=status,
        form=EmptyForm(), channel_form=ChannelForm(), other_channels=others,
        channel_label=LABELS.get(attempt.channel, attempt.channel) if attempt else "",
    )
    # Rendered first: a commit would expire what the page shows and have it read again.
    db.session.commit()
    return page


@bp.route("/orders/<order_no>/qr", methods=["POST"])
@login_required
def retry(order_no: str) -> Response:
    order = _my_order_or_404(order_no)
    if EmptyForm().validate_on_submit():
        try:
            retry_qr(order.id, current_user.id)
        except services.CheckoutError as error:
            db.session.rollback()
            flash(error.message, "error")
            return redirect(url_for("checkout.pay", order_no=order_no))
        attempt = services.current_attempt(order.id)
        if attempt is None or attempt.qr_code is None:
            flash(_("The payment channel did not answer. Please try again shortly."), "error")
    return redirect(url_for("checkout.pay", order_no=order_no))


@bp.route("/orders/<order_no>/channel", methods=["POST"])
@login_required
def switch(order_no: str) -> Response:
    """Pay with another channel: a new QR code; the previous one is closed."""
    order = _my_order_or_404(order_no)
    form = ChannelForm()
    if not form.validate_on_submit():
        flash(_("Choose a payment method."), "error")
        return redirect(url_for("checkout.pay", order_no=order_no))
    try:
        change_channel(order.id, current_user.id, form.channel.data)
    except services.CheckoutError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for("checkout.pay", order_no=order_no))
    attempt = services.current_attempt(order.id)
    if attempt is not None and attempt.status == "created" and attempt.qr_code is None:
        flash(_("The payment channel did not answer. Please try again shortly."), "error")
    return redirect(url_for("checkout.pay", order_no=order_no))


@bp.route("/orders/<order_no>/status")
def status(order_no: str) -> tuple[Response, int] | Response:
    """JSON for the poller: no login redirect, and someone else's order is not found.

    The site's most frequent request (every second or two per waiting learner), so it
    skips the user loader and answers from one statement: app/checkout/status_poll.py."""
    polled = status_poll.poll(order_no)
    if isinstance(polled, status_poll.Refusal):
        return _refused(polled)
    query_due = (
        polled.status == "pending"
        and polled.attempt_status == "created"
        and polled.next_query_at is not None
        and polled.next_query_at <= now() < polled.expires_at
    )
    # Checked in Python first: a poll every second or two must not write every time.
    if query_due and claim_query(polled.attempt_id):
        # The learner is waiting and the callback is late: ask the channel now. Inline,
        # the answer is already in this response; with a worker, in a later poll.
        db.session.commit()
        enqueue("query_attempt", polled.attempt_id)
        polled = status_poll.poll(order_no)
        if isinstance(polled, status_poll.Refusal):  # logged out meanwhile
            return _refused(polled)
    body = order_status(polled)  # type: ignore[arg-type]  # a PolledOrder has what it reads of an Order
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _refused(refusal: status_poll.Refusal) -> tuple[Response, int]:
    response = jsonify(code=refusal.code, message=refusal.message)
    response.headers["Cache-Control"] = "no-store"
    return response, refusal.status
