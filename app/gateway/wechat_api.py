"""WeChat Pay API v3 under ``/gateway/wechat``, played like api.mch.weixin.qq.com.

The merchant's base URL is ``<PUBLIC_BASE_URL>/gateway/wechat`` and it signs the
canonical path (``/v3/…?query``), so the mount prefix is stripped before the
signature is checked. Every answer, errors and empty 204s included, is signed in the
``Wechatpay-*`` headers. The API fault modes of ``faults.py`` apply, matched by the
out_trade_no in the path or the body.

A refund that names a notify_url owes one REFUND.SUCCESS callback; it is scheduled in
the refund's transaction and started only once that transaction committed.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import secrets
from datetime import date, datetime, timedelta
from typing import Any, Callable
from urllib.parse import quote

from flask import Response, current_app, g, request, url_for

from app.extensions import db
from app.gateway import faults, notifier, wechat_bills, wechat_trades
from app.gateway.bills import BillDay, download_token, read_download_token
from app.gateway.blueprint import bp
from app.gateway.identity import WechatIdentity, wechat_identity
from app.gateway.trades import StaleTrade
from app.gateway.wechat_trades import WechatRefusal
from app.gateway.wechat_wire import (
    compact_json,
    parse_authorization,
    refund_json,
    request_message,
    signed_headers,
    transaction_json,
)
from app.payments.channels.crypto import rsa2_verify
from app.timeutil import as_aware, from_aware, now

log = logging.getLogger(__name__)

MOUNT = "/wechat"  # under the blueprint's /gateway
MAX_SKEW = timedelta(minutes=5)
MAX_TOTAL_FEN = 100_000_000 * 100
_OUT_TRADE_NO_RE = re.compile(r"^[A-Za-z0-9_\-*]{6,32}$")
_OUT_REFUND_NO_RE = re.compile(r"^[A-Za-z0-9_\-|*@]{1,64}$")
_URL_RE = re.compile(r"^https?://[^\s]+$")

Answer = tuple[int, dict[str, Any] | None]
_PENDING_KEY = "gateway_wechat_pending_notifications"


def _system_error() -> Answer:
    return 500, {"code": "SYSTEM_ERROR", "message": "系统错误"}


def _signed(status: int, payload: dict[str, Any] | None) -> Response:
    body = "" if payload is None else compact_json(payload)
    headers = signed_headers(body, wechat_identity(), now())
    headers["Request-ID"] = secrets.token_hex(16).upper()
    response = Response(body.encode("utf-8"), status=status, headers=headers)
    if payload is None:
        response.headers.pop("Content-Type", None)
    else:
        response.content_type = "application/json"
    return response


def _canonical_path() -> str:
    """The path and query as the merchant signed them: without the mount prefix.

    The path comes undecoded from the server's RAW_URI / REQUEST_URI when it gives one
    (some leave the query out of it), the query from QUERY_STRING.
    """
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    path = raw.split("?", 1)[0] if raw else quote(
        request.script_root + request.path, safe="/-_.~*!$&'()+,;=:@"
    )
    prefix = request.script_root + (bp.url_prefix or "") + MOUNT
    if path.startswith(prefix):
        path = path[len(prefix) :]
    if request.query_string:
        path += "?" + request.query_string.decode("latin-1")
    return path


def _authenticate(identity: WechatIdentity, body: str) -> None:
    """Check the Authorization header: our mchid, our merchant serial, fresh, signed."""
    auth = parse_authorization(request.headers.get("Authorization", ""))
    if auth is None:
        raise WechatRefusal(401, "SIGN_ERROR", "Authorization 头缺失或格式错误")
    if auth.mchid != identity.mch_id:
        raise WechatRefusal(401, "SIGN_ERROR", "商户号与签名信息不匹配")
    if auth.serial_no != identity.merchant_cert_serial:
        raise WechatRefusal(401, "SIGN_ERROR", "商户证书序列号错误")
    if not auth.timestamp.isdigit():
        raise WechatRefusal(401, "SIGN_ERROR", "timestamp 格式错误")
    if abs(int(auth.timestamp) - as_aware(now()).timestamp()) > MAX_SKEW.total_seconds():
        raise WechatRefusal(401, "SIGN_ERROR", "timestamp 与当前时间相差超过5分钟")
    message = request_message(request.method, _canonical_path(), auth, body)
    if not rsa2_verify(message, auth.signature, identity.merchant_public_key):
        raise WechatRefusal(401, "SIGN_ERROR", "签名错误")


def _request_text() -> str:
    try:
        return request.get_data().decode("utf-8")
    except UnicodeDecodeError:
        raise WechatRefusal(400, "PARAM_ERROR", "请求体不是UTF-8编码") from None


def _json_body() -> dict[str, Any]:
    try:
        value = json.loads(_request_text())
    except ValueError:
        raise WechatRefusal(400, "PARAM_ERROR", "请求体不是合法的JSON") from None
    if not isinstance(value, dict):
        raise WechatRefusal(400, "PARAM_ERROR", "请求体不是JSON对象")
    return value


def _fault_hint() -> str | None:
    """The out_trade_no a request is about, read leniently, for matching fault modes."""
    hint = (request.view_args or {}).get("out_trade_no")
    if hint is None and request.method == "POST":
        try:
            value = json.loads(request.get_data() or b"{}")
        except ValueError:
            return None
        hint = value.get("out_trade_no") if isinstance(value, dict) else None
    return hint if isinstance(hint, str) and hint else None


def _string(
    body: dict[str, Any], name: str, max_length: int, required: bool = True
) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise WechatRefusal(400, "PARAM_ERROR", f"缺少参数 {name}")
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise WechatRefusal(400, "PARAM_ERROR", f"参数 {name} 格式错误")
    return value


def _fen(amount: dict[str, Any], name: str) -> int:
    value = amount.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_TOTAL_FEN:
        raise WechatRefusal(400, "PARAM_ERROR", f"amount.{name} 必须是正整数（分）")
    return value


def _amount(body: dict[str, Any]) -> dict[str, Any]:
    amount = body.get("amount")
    if not isinstance(amount, dict):
        raise WechatRefusal(400, "PARAM_ERROR", "缺少参数 amount")
    if amount.get("currency", "CNY") != "CNY":
        raise WechatRefusal(400, "PARAM_ERROR", "amount.currency 只支持 CNY")
    return amount


def _check_mchid(mchid: str | None, identity: WechatIdentity) -> None:
    if mchid is None:
        raise WechatRefusal(400, "PARAM_ERROR", "缺少参数 mchid")
    if mchid != identity.mch_id:
        raise WechatRefusal(400, "MCH_NOT_EXISTS", "商户号不存在或与请求商户号不一致")


def _parse_time_expire(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or "T" not in text:
        raise WechatRefusal(400, "PARAM_ERROR", "time_expire 不是 RFC 3339 格式")
    return from_aware(moment)


def _notify_after_commit(notification_id: int | None) -> None:
    """Have ``_serve`` start a notification the action scheduled, once the action's
    transaction committed; forgotten if it rolls back."""
    if notification_id is not None:
        g.setdefault(_PENDING_KEY, []).append(notification_id)


def _serve(action: Callable[[WechatIdentity, str], Answer | Response]) -> Response:
    """Authenticate, run ``action``, commit, start the notifications it scheduled, answer
    signed; fault modes around it. An action may answer a ready Response instead (a
    bill file), which goes out unsigned, as WeChat Pay serves files."""
    identity = wechat_identity()
    active = faults.faults_for("wechat", _fault_hint())
    if "api_error" in active:
        db.session.rollback()
        return Response("Service Unavailable", status=503, content_type="text/plain; charset=utf-8")
    pending: list[int] = []
    file: Response | None = None
    try:
        body = _request_text() if request.method == "POST" else ""
        _authenticate(identity, body)
        outcome = action(identity, body)
        db.session.commit()
        pending = g.pop(_PENDING_KEY, [])
        if isinstance(outcome, Response):
            file, (status, payload) = outcome, (200, None)
        else:
            status, payload = outcome
    except WechatRefusal as refusal:
        db.session.rollback()
        status, payload = refusal.status, {"code": refusal.code, "message": refusal.message}
        log.info("gateway wechat %s refused: %s", request.path, refusal.code)
    except StaleTrade:
        db.session.rollback()
        status, payload = _system_error()
    finally:
        g.pop(_PENDING_KEY, None)  # rolled back: the rows it named no longer exist
    # Only after the commit, as on the confirm page: the merchant may query the refund
    # the moment it hears from us. The fault modes below change the answer, not this.
    for notification_id in pending:
        notifier.notify_after_commit(notification_id)
    if "api_unknown" in active:
        file, (status, payload) = None, _system_error()  # what happened above stays committed
    if "api_timeout" in active:
        faults.sleep_for_timeout()
    return file if file is not None else _signed(status, payload)


def _native(identity: WechatIdentity, _body: str) -> Answer:
    body = _json_body()
    _check_mchid(_string(body, "mchid", 32), identity)
    if _string(body, "appid", 32) != identity.app_id:
        raise WechatRefusal(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
    out_trade_no = _string(body, "out_trade_no", 32) or ""
    if not _OUT_TRADE_NO_RE.match(out_trade_no):
        raise WechatRefusal(400, "PARAM_ERROR", "out_trade_no 须为6-32位字母、数字、_-*")
    notify_url = _string(body, "notify_url", 256) or ""
    if not _URL_RE.match(notify_url):
        raise WechatRefusal(400, "PARAM_ERROR", "notify_url 必须是 http 或 https 地址")
    trade = wechat_trades.create_native(
        mch_id=identity.mch_id,
        app_id=identity.app_id,
        out_trade_no=out_trade_no,
        description=_string(body, "description", 127) or "",
        total_fen=_fen(_amount(body), "total"),
        notify_url=notify_url,
        expires_at=_parse_time_expire(_string(body, "time_expire", 64, required=False)),
    )
    code_url = current_app.config["PUBLIC_BASE_URL"] + url_for(
        "gateway.wechat_qr", token=trade.qr_token
    )
    return 200, {"code_url": code_url}


def _query(trade: wechat_trades.GatewayWechatTrade | None, identity: WechatIdentity) -> Answer:
    _check_mchid(request.args.get("mchid"), identity)
    if trade is None or trade.mch_id != identity.mch_id:
        raise wechat_trades.order_not_exist()
    wechat_trades.expire_if_due(trade)
    return 200, transaction_json(trade)


@bp.get(MOUNT + "/v3/pay/transactions/out-trade-no/<out_trade_no>")
def wechat_query_by_out_trade_no(out_trade_no: str) -> Response:
    return _serve(lambda identity, _: _query(wechat_trades.by_out_trade_no(out_trade_no), identity))


@bp.get(MOUNT + "/v3/pay/transactions/id/<transaction_id>")
def wechat_query_by_transaction_id(transaction_id: str) -> Response:
    return _serve(
        lambda identity, _: _query(wechat_trades.by_transaction_id(transaction_id), identity)
    )


@bp.post(MOUNT + "/v3/pay/transactions/native")
def wechat_native() -> Response:
    return _serve(_native)


@bp.post(MOUNT + "/v3/pay/transactions/out-trade-no/<out_trade_no>/close")
def wechat_close(out_trade_no: str) -> Response:
    def close(identity: WechatIdentity, _body: str) -> Answer:
        _check_mchid(_string(_json_body(), "mchid", 32), identity)
        trade = wechat_trades.by_out_trade_no(out_trade_no)
        if trade is None:
            raise wechat_trades.order_not_exist()
        wechat_trades.close(trade)
        return 204, None

    return _serve(close)


def _refund(identity: WechatIdentity, _body: str) -> Answer:
    body = _json_body()
    out_trade_no = _string(body, "out_trade_no", 32, required=False)
    transaction_id = _string(body, "transaction_id", 32, required=False)
    if out_trade_no is None and transaction_id is None:
        raise WechatRefusal(400, "PARAM_ERROR", "out_trade_no 和 transaction_id 不能同时为空")
    out_refund_no = _string(body, "out_refund_no", 64) or ""
    if not _OUT_REFUND_NO_RE.match(out_refund_no):
        raise WechatRefusal(400, "PARAM_ERROR", "out_refund_no 格式错误")
    notify_url = _string(body, "notify_url", 256, required=False)
    if notify_url is not None and not _URL_RE.match(notify_url):
        raise WechatRefusal(400, "PARAM_ERROR", "notify_url 必须是 http 或 https 地址")
    amount = _amount(body)
    trade = (
        wechat_trades.by_transaction_id(transaction_id)
        if transaction_id
        else wechat_trades.by_out_trade_no(out_trade_no or "")
    )
    if trade is None or trade.mch_id != identity.mch_id:
        raise WechatRefusal(404, "RESOURCE_NOT_EXISTS", "订单不存在")
    # A repeated out_refund_no answers the first refund, which already owes (or owed)
    # its callback; only a refund made by this request schedules one.
    repeated = wechat_trades.refund_by_out_refund_no(out_refund_no) is not None
    refund = wechat_trades.refund(
        trade,
        out_refund_no=out_refund_no,
        refund_fen=_fen(amount, "refund"),
        total_fen=_fen(amount, "total"),
        reason=_string(body, "reason", 80, required=False),
        notify_url=notify_url,
    )
    if not repeated:
        _notify_after_commit(notifier.schedule_refund_notification(refund))
    return 200, refund_json(refund)


@bp.post(MOUNT + "/v3/refund/domestic/refunds")
def wechat_refund() -> Response:
    return _serve(_refund)


@bp.get(MOUNT + "/v3/refund/domestic/refunds/<out_refund_no>")
def wechat_refund_query(out_refund_no: str) -> Response:
    def query(identity: WechatIdentity, _body: str) -> Answer:
        refund = wechat_trades.refund_by_out_refund_no(out_refund_no)
        if refund is None or refund.trade.mch_id != identity.mch_id:
            raise WechatRefusal(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return 200, refund_json(refund)

    return _serve(query)


def _bill_date(text: str | None) -> date:
    try:
        if text is None or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise WechatRefusal(400, "PARAM_ERROR", "bill_date 须为 yyyy-MM-dd 格式") from None


def _tradebill(identity: WechatIdentity, _body: str) -> Answer:
    """The address and SHA1 of a day's bill. The emulator keeps the ALL bill only, and
    makes none until the Beijing day is over (STATEMENT_CREATING)."""
    bill_date = _bill_date(request.args.get("bill_date"))
    if request.args.get("bill_type", "ALL") != "ALL":
        raise WechatRefusal(400, "PARAM_ERROR", "模拟器只提供 bill_type=ALL 的账单")
    tar_type = request.args.get("tar_type") or None
    if tar_type not in (None, "GZIP"):
        raise WechatRefusal(400, "PARAM_ERROR", "tar_type 只支持 GZIP")
    if not BillDay.of(bill_date).is_over():
        raise WechatRefusal(400, "STATEMENT_CREATING", "账单生成中")
    # The hash is of the plain file, even when it is served gzipped.
    digest = hashlib.sha1(wechat_bills.bill_file(identity.mch_id, bill_date)).hexdigest()
    token = download_token(
        {"channel": "wechat", "mchid": identity.mch_id, "bill_date": bill_date.isoformat(),
         "tar_type": tar_type},
        wechat_bills.URL_LIFETIME,
    )
    url = current_app.config["PUBLIC_BASE_URL"] + url_for("gateway.wechat_bill_file", token=token)
    return 200, {"hash_type": "SHA1", "hash_value": digest, "download_url": url}


@bp.get(MOUNT + "/v3/bill/tradebill")
def wechat_tradebill() -> Response:
    return _serve(_tradebill)


@bp.get(MOUNT + "/v3/billdownload/file")
def wechat_bill_file() -> Response:
    def download(identity: WechatIdentity, _body: str) -> Response:
        fields = read_download_token(request.args.get("token", ""))
        if fields is None or fields.get("channel") != "wechat":
            raise WechatRefusal(400, "INVALID_REQUEST", "请按第一步申请账单的API指引，重新获取账单地址后再请求")
        if fields.get("mchid") != identity.mch_id:
            raise WechatRefusal(403, "NO_AUTH", "权限异常")
        payload = wechat_bills.bill_file(identity.mch_id, date.fromisoformat(fields["bill_date"]))
        if fields.get("tar_type") == "GZIP":
            payload = gzip.compress(payload, mtime=0)
        return Response(payload, status=200, content_type="application/octet-stream")

    return _serve(download)


API_VIEWS = (
    wechat_native,
    wechat_query_by_out_trade_no,
    wechat_query_by_transaction_id,
    wechat_close,
    wechat_refund,
    wechat_refund_query,
    wechat_tradebill,
    wechat_bill_file,
)
