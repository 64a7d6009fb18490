from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response
from wtforms.fields.choices import SelectChoice

from app.accounts.forms import EmptyForm
from app.bundles.services import BundleError
from app.cart import services
from app.cart.coupons import CouponError
from app.cart.forms import CheckoutForm, CouponForm
from app.checkout.checkout_flow import checkout_cart
from app.checkout.services import CheckoutError
from app.extensions import db
from app.payments.registry import channel_options, enabled_channels
from app.wallet.holds import wallet_balance

bp = Blueprint("cart", __name__, url_prefix="/cart")


@bp.route("/")
@login_required
def view() -> str:
    cart = services.view_cart(current_user.id)
    options = channel_options(cart.quote.total_fen)
    db.session.commit()  # the cart row may have just been created
    checkout_form = CheckoutForm()
    checkout_form.offer_channels(options)
    return render_template(
        "cart/cart.html",
        cart=cart,
        coupon_form=CouponForm(),
        checkout_form=checkout_form,
        resting=[option for option in options if not option.available],
        form=EmptyForm(),
        balance=wallet_balance(current_user.id),
    )


@bp.route("/add/<int:course_id>", methods=["POST"])
@login_required
def add(course_id: int) -> Response:
    if EmptyForm().validate_on_submit():
        try:
            services.add_course(current_user.id, course_id)
        except services.CartError as error:
            flash(error.message, "error")
        else:
            db.session.commit()
            flash(_("Added to your cart."), "success")
    return redirect(url_for("cart.view"))


@bp.route("/remove/<int:course_id>", methods=["POST"])
@login_required
def remove(course_id: int) -> Response:
    if EmptyForm().validate_on_submit():
        services.remove_course(current_user.id, course_id)
        db.session.commit()
    return redirect(url_for("cart.view"))


@bp.route("/coupon", methods=["POST"])
@login_required
def apply_coupon() -> Response:
    form = CouponForm()
    if not form.validate_on_submit():
        flash(_("Enter a coupon code."), "error")
        return redirect(url_for("cart.view"))
    try:
        services.apply_coupon(current_user.id, form.code.data)
    except (CouponError, BundleError) as error:  # a bundle staff changed meanwhile: the cart drops it
        flash(error.message, "error")
    else:
        db.session.commit()
        flash(_("Coupon applied."), "success")
    return redirect(url_for("cart.view"))


@bp.route("/coupon/remove", methods=["POST"])
@login_required
def remove_coupon() -> Response:
    if EmptyForm().validate_on_submit():
        services.clear_coupon(current_user.id)
        db.session.commit()
    return redirect(url_for("cart.view"))


@bp.route("/checkout", methods=["POST"])
@login_required
def checkout() -> Response:
    form = CheckoutForm()
    # Validate against every enabled channel; checkout itself refuses one that rests.
    form.channel.choices = [SelectChoice(name, name) for name in enabled_channels()]
    if not form.validate_on_submit():
        flash(_("Choose a payment method."), "error")
        return redirect(url_for("cart.view"))
    try:
        order_no = checkout_cart(current_user.id, form.channel.data, form.use_balance.data or "none")
    except (CheckoutError, CouponError) as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for("cart.view"))
    return redirect(url_for("checkout.pay", order_no=order_no))
