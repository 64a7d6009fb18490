"""The buyer's side of the emulated Alipay: the page a QR code opens, as the Alipay app
would show it. (The WeChat page is in ``wechat_sandbox``, the trade list in ``operator``.)

Opening the QR page plays the scan (Alipay creates the trade then). Confirm pays and
sends the notification after the payment is committed; Cancel leaves the trade waiting,
as backing out of the Alipay app does.
"""
from __future__ import annotations

from flask import abort, render_template
from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.exceptions import NotFound

from app.extensions import db
from app.gateway import trades
from app.gateway.blueprint import bp
from app.gateway.identity import alipay_identity
from app.gateway.models import GatewayAlipayTrade
from app.gateway.notifier import notify_after_commit, schedule_notification

# What the payer is told, in the payer's language (the protocol answers stay as the
# channels word them).
STALE_MESSAGE = _l("The trade changed meanwhile; this is its state now.")
EXPIRED_FORM_MESSAGE = _l("The form expired; please try again.")
CANNOT_PAY_MESSAGE = _l("This payment can no longer be made.")


class ButtonForm(FlaskForm):
    """A bare button: the form carries nothing but its CSRF token."""


def _trade_or_404(token: str) -> GatewayAlipayTrade:
    trade = trades.by_qr_token(token)
    if trade is None:
        abort(404)
    return trade


def _page(
    trade: GatewayAlipayTrade, message: str | LazyString | None = None, status: int = 200
) -> tuple[str, int]:
    return (
        render_template(
            "gateway/alipay_qr.html",
            trade=trade,
            merchant_name=alipay_identity().merchant_name,
            form=ButtonForm(),
            message=message,
        ),
        status,
    )


@bp.errorhandler(404)
def not_found(_error: NotFound) -> tuple[str, int]:
    return render_template("gateway/not_found.html"), 404


@bp.get("/alipay/qr/<token>")
def alipay_qr(token: str) -> tuple[str, int]:
    """The scan: creates the Alipay trade on first opening, then shows what can be done."""
    trade = _trade_or_404(token)
    try:
        trades.open_trade(trade)
        db.session.commit()
    except trades.StaleTrade:
        db.session.rollback()
        return _page(_trade_or_404(token), STALE_MESSAGE)
    return _page(trade)


@bp.post("/alipay/qr/<token>/confirm")
def alipay_confirm(token: str) -> tuple[str, int]:
    trade = _trade_or_404(token)
    form = ButtonForm()
    if not form.validate_on_submit():
        return _page(trade, EXPIRED_FORM_MESSAGE, status=400)
    try:
        trades.pay_trade(trade, alipay_identity().sandbox_buyer)
        notification_id = schedule_notification(trade)
        db.session.commit()
    except trades.TradeError:
        db.session.commit()  # keeps a lazy expiry that the refusal may have found
        return _page(trade, CANNOT_PAY_MESSAGE, status=409)
    except trades.StaleTrade:
        db.session.rollback()
        return _page(_trade_or_404(token), STALE_MESSAGE, 409)
    # Only after the commit: the merchant may query the moment it hears from us.
    notify_after_commit(notification_id)
    return _page(trade)


@bp.post("/alipay/qr/<token>/cancel")
def alipay_cancel(token: str) -> tuple[str, int]:
    trade = _trade_or_404(token)
    form = ButtonForm()
    if not form.validate_on_submit():
        return _page(trade, EXPIRED_FORM_MESSAGE, status=400)
    return _page(trade, _l("Payment cancelled. The trade stays open until it expires."))
