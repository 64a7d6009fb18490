"""The payer's side of the emulated WeChat Pay: the page a code_url opens, as the WeChat
app would show it after a scan.

WeChat created the order when the merchant asked for the code_url, so opening the page
changes nothing. Confirm pays and sends the callback after the payment is committed;
Cancel leaves the order unpaid, as backing out of the app does.
"""
from __future__ import annotations

from flask import abort, render_template
from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.gateway import wechat_trades
from app.gateway.blueprint import bp
from app.gateway.identity import wechat_identity
from app.gateway.notifier import notify_after_commit, schedule_notification
from app.gateway.sandbox import CANNOT_PAY_MESSAGE, EXPIRED_FORM_MESSAGE, STALE_MESSAGE, ButtonForm
from app.gateway.trades import StaleTrade
from app.gateway.wechat_models import GatewayWechatTrade


def _trade_or_404(token: str) -> GatewayWechatTrade:
    trade = wechat_trades.by_qr_token(token)
    if trade is None:
        abort(404)
    return trade


def _page(
    trade: GatewayWechatTrade, message: str | LazyString | None = None, status: int = 200
) -> tuple[str, int]:
    return (
        render_template(
            "gateway/wechat_qr.html",
            trade=trade,
            merchant_name=wechat_identity().merchant_name,
            form=ButtonForm(),
            message=message,
        ),
        status,
    )


@bp.get("/wechat/qr/<token>")
def wechat_qr(token: str) -> tuple[str, int]:
    trade = _trade_or_404(token)
    try:
        wechat_trades.expire_if_due(trade)
        db.session.commit()
    except StaleTrade:
        db.session.rollback()
        return _page(_trade_or_404(token), STALE_MESSAGE)
    return _page(trade)


@bp.post("/wechat/qr/<token>/confirm")
def wechat_confirm(token: str) -> tuple[str, int]:
    trade = _trade_or_404(token)
    form = ButtonForm()
    if not form.validate_on_submit():
        return _page(trade, EXPIRED_FORM_MESSAGE, status=400)
    try:
        wechat_trades.pay(trade, wechat_identity().sandbox_openid)
        notification_id = schedule_notification(trade)
        db.session.commit()
    except wechat_trades.WechatRefusal:
        db.session.commit()  # keeps a lazy expiry that the refusal may have found
        return _page(trade, CANNOT_PAY_MESSAGE, status=409)
    except StaleTrade:
        db.session.rollback()
        return _page(_trade_or_404(token), STALE_MESSAGE, 409)
    # Only after the commit: the merchant may query the moment it hears from us.
    notify_after_commit(notification_id)
    return _page(trade)


@bp.post("/wechat/qr/<token>/cancel")
def wechat_cancel(token: str) -> tuple[str, int]:
    trade = _trade_or_404(token)
    form = ButtonForm()
    if not form.validate_on_submit():
        return _page(trade, EXPIRED_FORM_MESSAGE, status=400)
    return _page(trade, _l("Payment cancelled. The order stays unpaid until it expires."))
