"""The emulator's operator pages: recent trades of both channels with the delivery of
their notifications (a WeChat trade's refund callbacks on its line), and the switches
of the fault modes (``faults.py``)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import IntegerField, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from app.extensions import db
from app.gateway import faults, trades, wechat_trades
from app.gateway.blueprint import bp
from app.gateway.models import FAULT_MODES, GatewayAlipayTrade, GatewayNotification
from app.gateway.sandbox import ButtonForm
from app.gateway.wechat_models import GatewayWechatRefund, GatewayWechatTrade
from app.timeutil import now

RECENT_LIMIT = 50
CHANNEL_CHOICES = [
    SelectChoice("*", _l("both channels")),
    SelectChoice("alipay", _l("Alipay")),
    SelectChoice("wechat", _l("WeChat Pay")),
]
CHANNEL_NAMES = {"alipay": _l("Alipay"), "wechat": _l("WeChat Pay")}

# What the page calls the identifiers the emulator stores: in English the identifiers
# themselves (as the protocols, the tests and the logs name them), in Chinese words.
FAULT_MODE_LABELS = {
    "drop_notify": _l("drop_notify"),
    "delay_notify": _l("delay_notify"),
    "duplicate_notify": _l("duplicate_notify"),
    "shuffle_notify": _l("shuffle_notify"),
    "api_error": _l("api_error"),
    "api_unknown": _l("api_unknown"),
    "api_timeout": _l("api_timeout"),
}
FAULT_CHANNEL_LABELS = {"*": _l("both"), "alipay": _l("alipay"), "wechat": _l("wechat")}
TRADE_STATE_LABELS = {
    trades.PRECREATED: _l("precreated"),
    trades.WAIT_BUYER_PAY: _l("WAIT_BUYER_PAY"),
    trades.TRADE_SUCCESS: _l("TRADE_SUCCESS"),
    trades.TRADE_CLOSED: _l("TRADE_CLOSED"),
    wechat_trades.NOTPAY: _l("NOTPAY"),
    wechat_trades.SUCCESS: _l("SUCCESS"),
    wechat_trades.CLOSED: _l("CLOSED"),
    wechat_trades.REFUND: _l("REFUND"),
}


class FaultForm(FlaskForm):
    mode = SelectField(
        _l("Mode"), choices=[SelectChoice(mode, FAULT_MODE_LABELS[mode]) for mode in FAULT_MODES]
    )
    channel = SelectField(_l("Channel"), choices=CHANNEL_CHOICES, default="*")
    out_trade_no = StringField(
        _l("out_trade_no (empty: every trade)"), validators=[Optional(), Length(max=64)]
    )
    delay_seconds = IntegerField(
        _l("Delay (s, delay_notify)"), default=0, validators=[InputRequired(), NumberRange(min=0)]
    )
    submit = SubmitField(_l("Switch on"))


@dataclass(frozen=True)
class RefundCallback:
    """The REFUND.SUCCESS callback of one WeChat refund, shown on its trade's line."""

    out_refund_no: str
    notification: GatewayNotification


@dataclass(frozen=True)
class TradeRow:
    """One line of the trade list, whatever the channel."""

    channel: str
    out_trade_no: str
    subject: str
    amount_fen: int
    status: str  # as a query would report it now
    created_at: datetime
    page_url: str
    notification: GatewayNotification | None
    refund_callbacks: tuple[RefundCallback, ...] = ()


def _alipay_rows(moment: datetime) -> list[TradeRow]:
    rows = db.session.execute(
        select(GatewayAlipayTrade, GatewayNotification)
        .outerjoin(
            GatewayNotification, GatewayNotification.alipay_trade_id == GatewayAlipayTrade.id
        )
        .order_by(GatewayAlipayTrade.id.desc())
        .limit(RECENT_LIMIT)
    ).all()
    return [
        TradeRow(
            channel="alipay",
            out_trade_no=trade.out_trade_no,
            subject=trade.subject,
            amount_fen=trade.total_amount_fen,
            # Shown without writing: a list page does not expire trades.
            status=trades.TRADE_CLOSED
            if trade.status in trades.UNPAID and moment >= trade.expires_at
            else trade.status,
            created_at=trade.created_at,
            page_url=url_for("gateway.alipay_qr", token=trade.qr_token),
            notification=notification,
        )
        for trade, notification in rows
    ]


def _refund_callbacks(trade_ids: list[int]) -> dict[int, tuple[RefundCallback, ...]]:
    """The refund callbacks of these WeChat trades, by trade id, oldest refund first;
    refunds without a notify_url owe none and are left out."""
    if not trade_ids:
        return {}
    found: dict[int, list[RefundCallback]] = {}
    rows = db.session.execute(
        select(GatewayWechatRefund, GatewayNotification)
        .join(GatewayNotification, GatewayNotification.wechat_refund_id == GatewayWechatRefund.id)
        .where(GatewayWechatRefund.trade_id.in_(trade_ids))
        .order_by(GatewayWechatRefund.id)
    ).all()
    for refund, notification in rows:
        found.setdefault(refund.trade_id, []).append(
            RefundCallback(refund.out_refund_no, notification)
        )
    return {trade_id: tuple(callbacks) for trade_id, callbacks in found.items()}


def _wechat_rows(moment: datetime) -> list[TradeRow]:
    rows = db.session.execute(
        select(GatewayWechatTrade, GatewayNotification)
        .outerjoin(
            GatewayNotification, GatewayNotification.wechat_trade_id == GatewayWechatTrade.id
        )
        .order_by(GatewayWechatTrade.id.desc())
        .limit(RECENT_LIMIT)
    ).all()
    refund_callbacks = _refund_callbacks([trade.id for trade, _ in rows])
    return [
        TradeRow(
            channel="wechat",
            out_trade_no=trade.out_trade_no,
            subject=trade.description,
            amount_fen=trade.total_fen,
            status=wechat_trades.CLOSED
            if trade.status == wechat_trades.NOTPAY and moment >= trade.expires_at
            else trade.status,
            created_at=trade.created_at,
            page_url=url_for("gateway.wechat_qr", token=trade.qr_token),
            notification=notification,
            refund_callbacks=refund_callbacks.get(trade.id, ()),
        )
        for trade, notification in rows
    ]


def _index_page(form: FaultForm | None = None, status: int = 200) -> tuple[str, int]:
    moment = now()
    rows = sorted(
        _alipay_rows(moment) + _wechat_rows(moment),
        key=lambda row: row.created_at,
        reverse=True,
    )[:RECENT_LIMIT]
    return (
        render_template(
            "gateway/index.html",
            rows=rows,
            faults=faults.active_faults(),
            fault_form=form or FaultForm(),
            clear_form=ButtonForm(),
            channels=CHANNEL_NAMES,
            fault_modes=FAULT_MODE_LABELS,
            fault_channels=FAULT_CHANNEL_LABELS,
            trade_states=TRADE_STATE_LABELS,
        ),
        status,
    )


@bp.get("/")
def index() -> tuple[str, int]:
    """Recent trades of both channels and the fault switches (a development aid)."""
    return _index_page()


@bp.get("/alipay/")
def alipay_index() -> tuple[str, int]:
    """The older address of the same page."""
    return _index_page()


@bp.post("/faults")
def fault_on() -> Response | tuple[str, int]:
    form = FaultForm()
    if not form.validate_on_submit():
        return _index_page(form, status=400)
    faults.set_fault(
        form.mode.data,
        channel=form.channel.data,
        out_trade_no=(form.out_trade_no.data or "").strip() or None,
        delay_seconds=form.delay_seconds.data or 0,
    )
    db.session.commit()
    target = (form.out_trade_no.data or "").strip() or _("every trade")
    flash(_("Fault %(mode)s is on for %(channel)s / %(target)s.", mode=FAULT_MODE_LABELS[form.mode.data],
            channel=FAULT_CHANNEL_LABELS.get(form.channel.data, form.channel.data), target=target))
    return redirect(url_for("gateway.index"))


@bp.post("/faults/<int:fault_id>/clear")
def fault_off(fault_id: int) -> Response:
    if not ButtonForm().validate_on_submit():
        flash(_("The form expired; please try again."))
        return redirect(url_for("gateway.index"))
    removed = faults.clear_fault(fault_id)
    db.session.commit()
    flash(_("Fault cleared.") if removed else _("That fault was already off."))
    return redirect(url_for("gateway.index"))


@bp.post("/faults/clear")
def faults_off() -> Response:
    if not ButtonForm().validate_on_submit():
        flash(_("The form expired; please try again."))
        return redirect(url_for("gateway.index"))
    removed = faults.clear_faults()
    db.session.commit()
    flash(_("All faults cleared (%(count)s).", count=removed))
    return redirect(url_for("gateway.index"))
