from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response
from wtforms.fields.choices import SelectChoice

from app.cart.forms import CheckoutForm
from app.checkout.models import Order
from app.checkout.services import CheckoutError
from app.extensions import db
from app.membership.flow import checkout_membership
from app.membership.services import MembershipError, active_plans, current_membership, member_until, \
    membership_price
from app.payments.registry import channel_options, enabled_channels

bp = Blueprint("membership", __name__, url_prefix="/membership")


@bp.route("/")
def plans() -> str:
    plans = active_plans()
    form = CheckoutForm()
    # Offered by what the cheapest plan costs with tax, as its order will charge.
    form.offer_channels(channel_options(min((sum(membership_price(plan)) for plan in plans), default=1)))
    signed_in = current_user.is_authenticated
    return render_template(
        "membership/plans.html", plans=plans, form=form,
        membership=current_membership(current_user.id) if signed_in else None,
        until=member_until(current_user.id) if signed_in else None,
    )


@bp.route("/<int:plan_id>/buy", methods=["POST"])
@login_required
def buy(plan_id: int) -> Response:
    form = CheckoutForm()
    form.channel.choices = [SelectChoice(name, name) for name in enabled_channels()]
    if not form.validate_on_submit():
        flash(_("Choose a payment method."), "error")
        return redirect(url_for("membership.plans"))
    try:
        order_id = checkout_membership(current_user.id, plan_id, form.channel.data)
    except (MembershipError, CheckoutError) as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for("membership.plans"))
    return redirect(url_for("checkout.pay", order_no=db.session.get(Order, order_id).order_no))
