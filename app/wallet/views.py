"""The learner's wallet page and top-ups. Thin: parse, call one service, commit, then
ask the channel for the QR code (after the commit, as checkout does)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response
from wtforms.fields.choices import SelectChoice

from app.checkout.models import TOPUP_TITLE
from app.errors import ServiceError
from app.extensions import db
from app.money import MoneyFormatError, parse_yuan
from app.payments.precreate import issue_qr
from app.payments.registry import channel_options, enabled_channels
from app.wallet import services
from app.wallet.forms import TopupForm
from app.wallet.holds import wallet_balance

bp = Blueprint("wallet", __name__)


def _page(form: TopupForm) -> str:
    minimum, maximum = services.topup_limits()
    return render_template(
        "wallet/index.html",
        balance=wallet_balance(current_user.id),
        movements=services.history(current_user.id),
        tiers=services.bonus_tiers(),
        minimum=minimum,
        maximum=maximum,
        form=form,
    )


@bp.route("/wallet")
@login_required
def index() -> str:
    form = TopupForm()
    form.offer_channels(channel_options(services.topup_limits()[0]))
    return _page(form)


@bp.route("/wallet/topup", methods=["POST"])
@login_required
def topup() -> Response | str:
    form = TopupForm()
    # Validate against every enabled channel; the service refuses one that rests.
    form.channel.choices = [SelectChoice(name, name) for name in enabled_channels()]
    if not form.validate_on_submit():
        flash(_("Enter an amount and choose a payment method."), "error")
        return redirect(url_for("wallet.index"))
    try:
        amount_fen = parse_yuan(form.amount.data.strip())
    except MoneyFormatError:
        flash(_("Enter the amount in yuan, such as 500 or 99.50."), "error")
        return redirect(url_for("wallet.index"))
    try:
        placed = services.place_topup(current_user.id, amount_fen, form.channel.data)
    except ServiceError as error:  # the wallet's refusals, and a checkout one such as "busy"
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for("wallet.index"))
    db.session.commit()
    issue_qr(placed.attempt_id, TOPUP_TITLE)
    return redirect(url_for("checkout.pay", order_no=placed.order_no))
