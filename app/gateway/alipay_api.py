"""``POST /gateway/alipay/gateway.do``: the open-platform gateway, played like
openapi.alipay.com/gateway.do.

The common parameters are checked in Alipay's order and with its error codes; ``sign``
is verified over every other non-empty parameter, ``sign_type`` included, with the
merchant's public key. Every answer, refusals included, is signed with the emulator's
private key. Refusals that come before the method is known go under ``error_response``.

The API fault modes of ``faults.py`` apply here, matched by biz_content's out_trade_no.
"""
from __future__ import annotations

import json
import logging
import re
from datetime import date, datetime
from typing import Any, Callable, Mapping

from flask import Response, current_app, request, url_for

from app.extensions import db
from app.gateway import alipay_bills, faults, trades
from app.gateway.bills import BillDay, download_token, read_download_token
from app.gateway.blueprint import bp
from app.gateway.identity import AlipayIdentity, alipay_identity
from app.gateway.models import GatewayAlipayTrade
from app.money import MoneyFormatError, format_yuan, parse_yuan
from app.payments.channels.alipay import (
    ALIPAY_TIME_FORMAT,
    format_beijing_time,
    signed_response_body,
    verify_params,
)
from app.payments.channels.alipay_bill import METHOD as BILL_METHOD
from app.timeutil import as_aware

log = logging.getLogger(__name__)

MESSAGES = {
    "10000": "Success",
    "20000": "Service Currently Unavailable",
    "40001": "Missing Required Arguments",
    "40002": "Invalid Arguments",
    "40004": "Business Failed",
}
MAX_AMOUNT_FEN = 100_000_000 * 100  # Alipay's ceiling for one trade: ¥100,000,000.00
MAX_URL_LENGTH = 512
_BILL_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

Node = dict[str, Any]


class Refusal(Exception):
    """An answer other than 10000, in Alipay's code / sub_code vocabulary."""

    def __init__(self, code: str, sub_code: str, sub_msg: str) -> None:
        super().__init__(f"{code} {sub_code}")
        self.node: Node = {
            "code": code,
            "msg": MESSAGES[code],
            "sub_code": sub_code,
            "sub_msg": sub_msg,
        }


def _business(error: trades.TradeError) -> Refusal:
    return Refusal("40004", error.sub_code, error.sub_msg)


def _answer(method: str, node: Mapping[str, Any]) -> Response:
    body = signed_response_body(method, node, alipay_identity().gateway_private_key)
    return Response(body, status=200, content_type="application/json; charset=utf-8")


def _read_params() -> dict[str, str]:
    """Parameters from the query string and the form body, like Alipay accepts them."""
    pairs = list(request.args.items(multi=True)) + list(request.form.items(multi=True))
    params = dict(pairs)
    if len(params) != len(pairs):
        raise Refusal("40002", "isv.invalid-parameter", "参数重复")
    return params


def _require(params: Mapping[str, str], name: str, sub_code: str) -> str:
    value = params.get(name)
    if not value:
        raise Refusal("40001", sub_code, f"缺少参数 {name}")
    return value


def _check_common(params: Mapping[str, str], identity: AlipayIdentity) -> None:
    """Authenticate the request: app id, signature type, charset, signature, timestamp."""
    if _require(params, "app_id", "isv.missing-app-id") != identity.app_id:
        raise Refusal("40002", "isv.invalid-app-id", "无效的AppID参数")
    if _require(params, "sign_type", "isv.missing-signature-type") != "RSA2":
        raise Refusal("40002", "isv.invalid-signature-type", "无效的签名类型")
    if _require(params, "charset", "isv.missing-charset").lower() != "utf-8":
        raise Refusal("40002", "isv.invalid-charset", "字符集错误")
    _require(params, "sign", "isv.missing-signature")
    if not verify_params(params, identity.merchant_public_key, exclude=("sign",)):
        raise Refusal("40002", "isv.invalid-signature", "验签出错")
    timestamp = _require(params, "timestamp", "isv.missing-timestamp")
    try:
        datetime.strptime(timestamp, ALIPAY_TIME_FORMAT)
    except ValueError:
        raise Refusal("40002", "isv.invalid-timestamp", "非法的时间戳参数") from None
    if params.get("version", "1.0") != "1.0":
        raise Refusal("40002", "isv.invalid-version", "版本号错误")
    if len(params.get("notify_url", "")) > MAX_URL_LENGTH:
        raise Refusal("40002", "isv.invalid-parameter", "notify_url 过长")


def _biz_content(params: Mapping[str, str]) -> dict[str, Any]:
    try:
        biz = json.loads(params.get("biz_content") or "{}")
    except ValueError:
        raise Refusal("40002", "isv.invalid-parameter", "biz_content 不是合法的JSON") from None
    if not isinstance(biz, dict):
        raise Refusal("40002", "isv.invalid-parameter", "biz_content 不是JSON对象")
    return biz


def _text(biz: Mapping[str, Any], name: str, max_length: int, required: bool = True) -> str | None:
    value = biz.get(name)
    if value is None or value == "":
        if required:
            raise Refusal("40004", "ACQ.INVALID_PARAMETER", f"缺少参数 {name}")
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise Refusal("40004", "ACQ.INVALID_PARAMETER", f"参数 {name} 无效")
    return value


def _lookup(biz: Mapping[str, Any], identity: AlipayIdentity) -> GatewayAlipayTrade | None:
    """The emulator's record for out_trade_no or trade_no, scanned or not."""
    out_trade_no = _text(biz, "out_trade_no", 64, required=False)
    trade_no = _text(biz, "trade_no", 64, required=False)
    if out_trade_no is None and trade_no is None:
        raise Refusal("40004", "ACQ.INVALID_PARAMETER", "out_trade_no 和 trade_no 不能同时为空")
    trade = trades.by_trade_no(trade_no) if trade_no else trades.by_out_trade_no(out_trade_no or "")
    return trade if trade is not None and trade.app_id == identity.app_id else None


def _not_exist() -> Refusal:
    return Refusal("40004", "ACQ.TRADE_NOT_EXIST", "交易不存在")


def _success(**fields: Any) -> Node:
    return {"code": "10000", "msg": "Success", **fields}


def _busy() -> Node:
    return Refusal("20000", "ACQ.SYSTEM_ERROR", "系统繁忙，请重试").node


def _beijing_text(moment: datetime) -> str:
    return format_beijing_time(as_aware(moment))


def precreate(params: Mapping[str, str], biz: Mapping[str, Any], identity: AlipayIdentity) -> Node:
    out_trade_no = _text(biz, "out_trade_no", 64) or ""
    subject = _text(biz, "subject", 256) or ""
    try:
        amount_fen = parse_yuan(_text(biz, "total_amount", 16) or "")
    except MoneyFormatError:
        raise Refusal("40004", "ACQ.INVALID_PARAMETER", "total_amount 格式错误") from None
    if not 0 < amount_fen <= MAX_AMOUNT_FEN:
        raise Refusal("40004", "ACQ.TOTAL_FEE_EXCEED", "订单金额超过限额")
    try:
        trade = trades.precreate(
            app_id=identity.app_id,
            out_trade_no=out_trade_no,
            amount_fen=amount_fen,
            subject=subject,
            timeout_express=_text(biz, "timeout_express", 8, required=False),
            notify_url=params.get("notify_url") or None,
        )
    except trades.TradeError as error:
        raise _business(error) from None
    qr_path = url_for("gateway.alipay_qr", token=trade.qr_token)
    return _success(
        out_trade_no=trade.out_trade_no, qr_code=current_app.config["PUBLIC_BASE_URL"] + qr_path
    )


def query(params: Mapping[str, str], biz: Mapping[str, Any], identity: AlipayIdentity) -> Node:
    trade = _lookup(biz, identity)
    if trade is None or trade.opened_at is None:
        raise _not_exist()  # until the QR is scanned Alipay has no trade to report
    trades.expire_if_due(trade)
    amount = format_yuan(trade.total_amount_fen)
    paid = trade.paid_at is not None  # a fully refunded trade is closed, yet was paid
    node = _success(
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        trade_status=trade.status,
        total_amount=amount,
        buyer_pay_amount=amount if paid else "0.00",
        receipt_amount=amount if paid else "0.00",
    )
    if paid and trade.paid_at is not None:
        node["buyer_logon_id"] = trade.buyer_logon_id
        node["send_pay_date"] = _beijing_text(trade.paid_at)
    return node


def close(params: Mapping[str, str], biz: Mapping[str, Any], identity: AlipayIdentity) -> Node:
    trade = _lookup(biz, identity)
    if trade is None:
        raise _not_exist()
    try:
        outcome = trades.close_trade(trade)
    except trades.TradeError as error:
        raise _business(error) from None
    if outcome is trades.CloseOutcome.NOT_EXIST:
        # Returned, not raised: the close of the unscanned QR is committed with this answer.
        return _not_exist().node
    return _success(trade_no=trade.trade_no, out_trade_no=trade.out_trade_no)


def _paid_trade(biz: Mapping[str, Any], identity: AlipayIdentity) -> GatewayAlipayTrade:
    trade = _lookup(biz, identity)
    if trade is None or trade.opened_at is None:
        raise _not_exist()
    return trade


def refund(params: Mapping[str, str], biz: Mapping[str, Any], identity: AlipayIdentity) -> Node:
    """``alipay.trade.refund``: synchronous, idempotent by out_request_no."""
    trade = _paid_trade(biz, identity)
    try:
        refund_fen = parse_yuan(_text(biz, "refund_amount", 16) or "")
    except MoneyFormatError:
        raise Refusal("40004", "ACQ.INVALID_PARAMETER", "refund_amount 格式错误") from None
    if refund_fen <= 0:
        raise Refusal("40004", "ACQ.INVALID_PARAMETER", "refund_amount 必须大于0")
    out_request_no = _text(biz, "out_request_no", 64, required=False)
    if out_request_no is None:
        # Alipay lets a full refund omit it and then uses out_trade_no in its place.
        if refund_fen != trade.total_amount_fen:
            raise Refusal("40004", "ACQ.INVALID_PARAMETER", "部分退款时 out_request_no 不能为空")
        out_request_no = trade.out_trade_no
    reason = _text(biz, "refund_reason", 256, required=False)
    try:
        done, moved = trades.refund_trade(trade, out_request_no, refund_fen, reason)
    except trades.TradeError as error:
        raise _business(error) from None
    return _success(
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        buyer_logon_id=trade.buyer_logon_id,
        fund_change="Y" if moved else "N",
        refund_fee=format_yuan(trade.refunded_fen),  # cumulative, as Alipay reports it
        gmt_refund_pay=_beijing_text(done.created_at),
        send_back_fee=format_yuan(done.refund_fen),
    )


def refund_query(
    params: Mapping[str, str], biz: Mapping[str, Any], identity: AlipayIdentity
) -> Node:
    """``alipay.trade.fastpay.refund.query``. An unknown out_request_no is still a 10000
    answer, only without refund_status or refund_amount: that is how Alipay says
    "no such refund"."""
    trade = _paid_trade(biz, identity)
    out_request_no = _text(biz, "out_request_no", 64) or ""
    node = _success(
        trade_no=trade.trade_no, out_trade_no=trade.out_trade_no, out_request_no=out_request_no
    )
    done = trades.refund_by_request_no(trade, out_request_no)
    if done is not None:
        node.update(
            total_amount=format_yuan(trade.total_amount_fen),
            refund_amount=format_yuan(done.refund_fen),
            refund_status="REFUND_SUCCESS",
            gmt_refund_pay=_beijing_text(done.created_at),
        )
    return node


def _invalid_bill_argument(message: str) -> Refusal:
    return Refusal("40004", "isv.invalid_arguments", message)


def bill_downloadurl(
    params: Mapping[str, str], biz: Mapping[str, Any], identity: AlipayIdentity
) -> Node:
    """``alipay.data.dataservice.bill.downloadurl.query``: where to fetch a day's bill.

    The emulator keeps daily ``trade`` bills only (no monthly or ``signcustomer``
    ones). Until the Beijing day is over there is no bill: isp.bill_not_exist.
    """
    if biz.get("bill_type") != "trade":
        raise _invalid_bill_argument("bill_type 只支持 trade")
    text = biz.get("bill_date")
    try:
        if not isinstance(text, str) or not _BILL_DATE_RE.match(text):
            raise ValueError
        bill_date = date.fromisoformat(text)
    except ValueError:
        raise _invalid_bill_argument("bill_date 须为 yyyy-MM-dd 格式的日账单日期") from None
    if not BillDay.of(bill_date).is_over():
        raise Refusal("40004", "isp.bill_not_exist", "账单不存在")
    token = download_token(
        {"channel": "alipay", "app_id": identity.app_id, "bill_date": bill_date.isoformat()},
        alipay_bills.URL_LIFETIME,
    )
    path = url_for(
        "gateway.alipay_bill_file",
        bizType="trade",
        userId=alipay_bills.bill_account(identity.seller_id),
        fileType="csv.zip",
        bizDates=f"{bill_date:%Y%m%d}",
        downloadFileName=alipay_bills.archive_name(identity.seller_id, bill_date),
        token=token,
    )
    return _success(bill_download_url=current_app.config["PUBLIC_BASE_URL"] + path)


Handler = Callable[[Mapping[str, str], Mapping[str, Any], AlipayIdentity], Node]
HANDLERS: dict[str, Handler] = {
    "alipay.trade.precreate": precreate,
    "alipay.trade.query": query,
    "alipay.trade.close": close,
    "alipay.trade.refund": refund,
    "alipay.trade.fastpay.refund.query": refund_query,
    BILL_METHOD: bill_downloadurl,
}


def _fault_hint() -> str | None:
    """The out_trade_no a request is about, read leniently, for matching fault modes."""
    try:
        biz = json.loads(request.values.get("biz_content") or "{}")
    except ValueError:
        return None
    value = biz.get("out_trade_no") if isinstance(biz, dict) else None
    return value if isinstance(value, str) and value else None


@bp.post("/alipay/gateway.do")
def alipay_gateway() -> Response:
    """One open-platform call. Always HTTP 200 with a signed JSON body, as Alipay does,
    unless a fault mode says otherwise."""
    identity = alipay_identity()
    active = faults.faults_for("alipay", _fault_hint())
    if "api_error" in active:
        db.session.rollback()
        return Response("Service Unavailable", status=503, content_type="text/plain; charset=utf-8")
    try:
        params = _read_params()
        method = _require(params, "method", "isv.missing-method")
        if method not in HANDLERS:
            raise Refusal("40002", "isv.invalid-method", "不存在的方法名")
    except Refusal as refusal:
        return _answer("error", refusal.node)
    try:
        _check_common(params, identity)
        node = HANDLERS[method](params, _biz_content(params), identity)
        db.session.commit()
    except Refusal as refusal:
        db.session.rollback()
        node = refusal.node
    except trades.StaleTrade:
        db.session.rollback()
        node = _busy()
    if node["code"] != "10000":
        log.info("gateway %s refused: %s %s", method, node["code"], node.get("sub_code"))
    if "api_unknown" in active:
        node = _busy()  # whatever happened above stays committed
    if "api_timeout" in active:
        faults.sleep_for_timeout()
    return _answer(method, node)


@bp.get("/alipay/downloadBillFile.resource")
def alipay_bill_file() -> Response:
    """The bill ZIP behind a ``bill_download_url``: no signature, like Alipay's file
    server; the address itself is the authority, and it expires."""
    identity = alipay_identity()
    if "api_error" in faults.faults_for("alipay", None):
        return Response("Service Unavailable", status=503, content_type="text/plain; charset=utf-8")
    fields = read_download_token(request.args.get("token", ""))
    if fields is None or fields.get("channel") != "alipay" or fields.get("app_id") != identity.app_id:
        return Response("下载超时，请重新下载", status=404, content_type="text/plain; charset=utf-8")
    bill_date = date.fromisoformat(fields["bill_date"])
    body = alipay_bills.build_archive(
        identity.seller_id, bill_date, alipay_bills.bill_rows(identity.app_id, bill_date)
    )
    name = alipay_bills.archive_name(identity.seller_id, bill_date)
    return Response(
        body,
        status=200,
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
