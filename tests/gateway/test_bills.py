"""Daily trade bills, both sides: the emulator publishes them in Alipay's and WeChat
Pay's formats, and the real adapters download them over the in-process transport and
read them back into BillLines, fees included.

The clock starts at 2026-11-20 10:00 Beijing; that day's bill exists from midnight on.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.gateway import faults
from app.payments.channels.alipay import AlipayChannel, extract_response_node
from app.payments.channels.base import (
    BillKind,
    BillLine,
    BillNotReady,
    RefundRequest,
    UnknownResult,
)
from app.payments.channels.bill_files import MalformedBill
from app.payments.channels.crypto import RsaKey, rsa2_verify
from app.payments.channels.wechat import WechatChannel
from app.payments.registry import wechat_settings
from app.timeutil import as_aware
from tests.conftest import Clock
from tests.gateway.helpers import GATEWAY_URL, charge, post_signed, qr_path, sdk_client
from tests.gateway.wechat_helpers import API_BASE, Merchant, pay_wechat

DAY = date(2026, 11, 20)
NEXT_DAY = date(2026, 11, 21)
BEIJING_OFFSET = "+08:00"
ALIPAY_DETAIL_HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
    "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)
WECHAT_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
    "费率备注"
)
WECHAT_SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"


@pytest.fixture
def wechat(app: Flask, clock: Clock) -> WechatChannel:
    """The real WeChat adapter, configured as the app configures it."""
    return WechatChannel(
        wechat_settings(app.config), app.extensions["cashier.http"], clock=lambda: as_aware(clock())
    )


def beijing(text: str) -> datetime:
    return datetime.fromisoformat(text + BEIJING_OFFSET)


def at_beijing(clock: Clock, text: str) -> None:
    """Move the clock to a Beijing wall time."""
    clock.current = beijing(text).astimezone(timezone.utc).replace(tzinfo=None)


def pay_alipay(channel: AlipayChannel, client: FlaskClient, clock: Clock, out_trade_no: str,
               amount_fen: int) -> str:
    """Precreate, scan and confirm at the emulator; the trade's Alipay number."""
    path = qr_path(channel.precreate(charge(clock, amount_fen, out_trade_no=out_trade_no)).qr_code)
    client.get(path)
    assert client.post(path + "/confirm").status_code == 200
    trade_no = channel.query(out_trade_no).channel_trade_no
    assert trade_no
    return trade_no


def refund_alipay(channel: AlipayChannel, out_trade_no: str, out_refund_no: str, amount_fen: int,
                  total_fen: int) -> None:
    channel.refund(RefundRequest(out_trade_no, out_refund_no, amount_fen, total_fen, "课程退款"))


def transaction_id(merchant: Merchant, out_trade_no: str) -> str:
    return str(merchant.query(out_trade_no).json()["transaction_id"])


def refund_wechat(merchant: Merchant, out_trade_no: str, out_refund_no: str, amount_fen: int,
                  total_fen: int) -> str:
    answer = merchant.refund(out_refund_no, amount_fen, total=total_fen, out_trade_no=out_trade_no)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["refund_id"])


# --- the day's lines, both channels ------------------------------------------------------


def test_an_alipay_day_with_payments_and_refunds_reads_back_exactly(
    channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    at_beijing(clock, "2026-11-20 10:00:00")
    first = pay_alipay(channel, client, clock, "A20261120000001", 9450)
    at_beijing(clock, "2026-11-20 10:01:00")
    second = pay_alipay(channel, client, clock, "A20261120000002", 4990)
    at_beijing(clock, "2026-11-20 10:02:00")
    refund_alipay(channel, "A20261120000001", "R1", 4000, 9450)
    at_beijing(clock, "2026-11-20 10:03:00")
    refund_alipay(channel, "A20261120000001", "R2", 5450, 9450)
    at_beijing(clock, "2026-11-21 09:00:00")

    lines = channel.download_bill(DAY)

    # 0.6 %: 94.50 pays 0.57 (56.7 rounded half up); 49.90 pays 0.30 (29.94). The refunds
    # give back the fee on their running totals: 0.57 × 40/94.5 = 0.24, then the rest.
    assert lines == [
        BillLine(BillKind.PAYMENT, "A20261120000001", first, 9450, 57, "succeeded",
                 beijing("2026-11-20 10:00:00")),
        BillLine(BillKind.PAYMENT, "A20261120000002", second, 4990, 30, "succeeded",
                 beijing("2026-11-20 10:01:00")),
        BillLine(BillKind.REFUND, "A20261120000001", first, 4000, 24, "succeeded",
                 beijing("2026-11-20 10:02:00"), out_refund_no="R1"),
        BillLine(BillKind.REFUND, "A20261120000001", first, 5450, 33, "succeeded",
                 beijing("2026-11-20 10:03:00"), out_refund_no="R2"),
    ]
    refunds = [line for line in lines if line.kind is BillKind.REFUND]
    assert sum(line.fee_fen for line in refunds) == lines[0].fee_fen  # refunded in full


def test_a_wechat_day_with_payments_and_refunds_reads_back_exactly(
    wechat: WechatChannel, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    at_beijing(clock, "2026-11-20 10:00:00")
    pay_wechat(merchant, client, "W20261120000001", 9450)
    at_beijing(clock, "2026-11-20 10:01:00")
    pay_wechat(merchant, client, "W20261120000002", 4990)
    at_beijing(clock, "2026-11-20 10:02:00")
    partial = refund_wechat(merchant, "W20261120000002", "WR1", 1000, 4990)
    at_beijing(clock, "2026-11-20 10:03:00")
    full = refund_wechat(merchant, "W20261120000001", "WR2", 9450, 9450)
    at_beijing(clock, "2026-11-21 09:00:00")

    lines = wechat.download_bill(DAY)

    first = transaction_id(merchant, "W20261120000001")
    second = transaction_id(merchant, "W20261120000002")
    # 49.90 pays 0.30; refunding 10.00 of it gives back 0.30 × 10/49.9 = 0.06.
    assert lines == [
        BillLine(BillKind.PAYMENT, "W20261120000001", first, 9450, 57, "succeeded",
                 beijing("2026-11-20 10:00:00")),
        BillLine(BillKind.PAYMENT, "W20261120000002", second, 4990, 30, "succeeded",
                 beijing("2026-11-20 10:01:00")),
        BillLine(BillKind.REFUND, "W20261120000002", second, 1000, 6, "succeeded",
                 beijing("2026-11-20 10:02:00"), out_refund_no="WR1", channel_refund_no=partial),
        BillLine(BillKind.REFUND, "W20261120000001", first, 9450, 57, "succeeded",
                 beijing("2026-11-20 10:03:00"), out_refund_no="WR2", channel_refund_no=full),
    ]


def test_a_refund_on_a_later_day_gives_back_the_rest_of_the_fee(
    channel: AlipayChannel, wechat: WechatChannel, merchant: Merchant, client: FlaskClient,
    clock: Clock,
) -> None:
    at_beijing(clock, "2026-11-20 10:00:00")
    pay_alipay(channel, client, clock, "A20261120000001", 9450)
    pay_wechat(merchant, client, "W20261120000001", 9450)
    refund_alipay(channel, "A20261120000001", "R1", 4000, 9450)
    refund_wechat(merchant, "W20261120000001", "WR1", 4000, 9450)
    at_beijing(clock, "2026-11-21 11:00:00")
    refund_alipay(channel, "A20261120000001", "R2", 5450, 9450)
    refund_wechat(merchant, "W20261120000001", "WR2", 5450, 9450)
    at_beijing(clock, "2026-11-22 09:00:00")

    for adapter in (channel, wechat):
        first_day, second_day = adapter.download_bill(DAY), adapter.download_bill(NEXT_DAY)
        assert [(line.kind, line.fee_fen) for line in first_day] == [
            (BillKind.PAYMENT, 57), (BillKind.REFUND, 24)
        ]
        assert [(line.kind, line.amount_fen, line.fee_fen) for line in second_day] == [
            (BillKind.REFUND, 5450, 33)
        ]


def test_refunds_give_back_the_fee_on_their_running_total_not_each_on_its_own(
    channel: AlipayChannel, wechat: WechatChannel, merchant: Merchant, client: FlaskClient,
    clock: Clock,
) -> None:
    """¥1.00 pays 0.6 fen, rounded up to 1. Two halves, each rounded on its own, would
    give back 1 fen twice; on the running total the second gives back nothing."""
    pay_alipay(channel, client, clock, "A20261120000001", 100)
    pay_wechat(merchant, client, "W20261120000001", 100)
    for half in ("H1", "H2"):
        clock.advance(minutes=1)
        refund_alipay(channel, "A20261120000001", half, 50, 100)
        refund_wechat(merchant, "W20261120000001", half, 50, 100)
    at_beijing(clock, "2026-11-21 09:00:00")
    for adapter in (channel, wechat):
        fees = [(line.kind, line.amount_fen, line.fee_fen) for line in adapter.download_bill(DAY)]
        assert fees == [(BillKind.PAYMENT, 100, 1), (BillKind.REFUND, 50, 1), (BillKind.REFUND, 50, 0)]


@pytest.mark.parametrize("paid_at", ["2026-11-20 23:59:59", "2026-11-21 00:00:00"])
def test_a_payment_belongs_to_the_beijing_day_it_was_paid(
    channel: AlipayChannel, wechat: WechatChannel, merchant: Merchant, client: FlaskClient,
    clock: Clock, paid_at: str,
) -> None:
    at_beijing(clock, paid_at)
    pay_alipay(channel, client, clock, "A20261120000001", 9450)
    pay_wechat(merchant, client, "W20261120000001", 9450)
    at_beijing(clock, "2026-11-22 09:00:00")
    expected_day = DAY if paid_at.startswith("2026-11-20") else NEXT_DAY
    other_day = NEXT_DAY if expected_day == DAY else DAY
    for adapter, out_trade_no in ((channel, "A20261120000001"), (wechat, "W20261120000001")):
        [line] = adapter.download_bill(expected_day)
        assert (line.out_trade_no, line.occurred_at) == (out_trade_no, beijing(paid_at))
        assert adapter.download_bill(other_day) == []


@pytest.mark.parametrize(
    "now", ["2026-11-20 10:00:00", "2026-11-20 23:59:59", "2026-11-19 12:00:00"]
)
def test_a_day_not_over_has_no_bill_yet(
    channel: AlipayChannel, wechat: WechatChannel, clock: Clock, now: str
) -> None:
    at_beijing(clock, now)
    for adapter in (channel, wechat):
        with pytest.raises(BillNotReady):
            adapter.download_bill(DAY)


def test_a_past_day_without_trades_is_an_empty_bill(
    channel: AlipayChannel, wechat: WechatChannel, clock: Clock
) -> None:
    at_beijing(clock, "2026-11-21 00:00:00")  # the first second the bill exists
    assert channel.download_bill(DAY) == []
    assert wechat.download_bill(DAY) == []


def test_the_emulators_fee_rate_is_its_own(
    app: Flask, channel: AlipayChannel, wechat: WechatChannel, merchant: Merchant,
    client: FlaskClient, clock: Clock,
) -> None:
    """A channel that charges another rate than we expect shows it in its bill."""
    app.config.update(GATEWAY_ALIPAY_FEE_BPS=100, GATEWAY_WECHAT_FEE_BPS=38)
    pay_alipay(channel, client, clock, "A20261120000001", 9450)
    pay_wechat(merchant, client, "W20261120000001", 9450)
    at_beijing(clock, "2026-11-21 09:00:00")
    assert [line.fee_fen for line in channel.download_bill(DAY)] == [95]  # 94.5 rounds up
    assert [line.fee_fen for line in wechat.download_bill(DAY)] == [36]  # 35.91


# --- what the files look like -----------------------------------------------------------


def alipay_archive(app: Flask, keys_dir: Path, bill_date: date) -> zipfile.ZipFile:
    """The bill ZIP, asked for by python-alipay-sdk, which checks the emulator's signed
    answer independently of our code."""
    sdk = sdk_client(keys_dir)
    body = sdk.build_body(
        "alipay.data.dataservice.bill.downloadurl.query",
        {"bill_type": "trade", "bill_date": bill_date.isoformat()},
    )
    session: requests.Session = app.extensions["cashier.http"]
    raw = session.post(
        GATEWAY_URL,
        data=sdk.sign_data(body).encode("utf-8"),
        headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        timeout=5,
    ).text
    answer = sdk._verify_and_return_sync_response(
        raw, "alipay_data_dataservice_bill_downloadurl_query_response"
    )
    assert answer["code"] == "10000"
    download = session.get(answer["bill_download_url"], timeout=5)
    assert download.status_code == 200
    return zipfile.ZipFile(io.BytesIO(download.content))


def test_the_alipay_bill_is_a_zip_of_gbk_csv_files_as_alipay_ships_them(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock, keys_dir: Path
) -> None:
    trade_no = pay_alipay(channel, client, clock, "A20261120000001", 9450)
    at_beijing(clock, "2026-11-20 10:05:00")
    refund_alipay(channel, "A20261120000001", "R1", 4000, 9450)
    at_beijing(clock, "2026-11-21 09:00:00")

    archive = alipay_archive(app, keys_dir, DAY)
    members = {info.filename.encode("cp437").decode("gbk"): info for info in archive.infolist()}
    assert all(not info.flag_bits & 0x800 for info in members.values())  # GBK names, no UTF-8 flag
    account = "20880000000000010156"
    assert sorted(members) == [f"{account}_20261120_业务明细(汇总).csv", f"{account}_20261120_业务明细.csv"]
    detail = archive.read(members[f"{account}_20261120_业务明细.csv"]).decode("gbk").split("\r\n")
    assert detail[:3] == [
        "#支付宝业务明细查询",
        f"#账号：[{account}]",
        "#起始日期：[2026年11月20日 00:00:00]   终止日期：[2026年11月21日 00:00:00]",
    ]
    assert detail[3].startswith("#---") and "业务明细列表" in detail[3]
    assert detail[4] == ALIPAY_DETAIL_HEADER
    payment, refund = detail[5].split(","), detail[6].split(",")
    assert payment[:3] == [f"{trade_no}\t", "A20261120000001\t", "交易\t"]
    assert (payment[5], payment[11], payment[12], payment[22]) == (
        "2026-11-20 10:00:00", "94.50", "94.50", "-0.57"
    )
    assert refund[:3] == [f"{trade_no}\t", "A20261120000001\t", "退款\t"]
    assert (refund[5], refund[11], refund[21], refund[22]) == (
        "2026-11-20 10:05:00", "-40.00", "R1\t", "0.24"
    )
    assert detail[7].startswith("#---") and "业务明细列表结束" in detail[7]
    assert detail[8].startswith("#交易合计：1笔，商家实收共94.50元")
    assert detail[9].startswith("#退款合计：1笔，商家实收退款共-40.00元")
    assert detail[10] == "#导出时间：[2026年11月21日 09:00:00]"
    summary = archive.read(members[f"{account}_20261120_业务明细(汇总).csv"]).decode("gbk")
    assert "合计,,1,1,54.50,54.50,0.00,0.00,0.00,-0.33,0.00,54.17" in summary.split("\r\n")


def test_an_empty_alipay_day_still_has_its_headers(
    app: Flask, clock: Clock, keys_dir: Path
) -> None:
    at_beijing(clock, "2026-11-21 09:00:00")
    archive = alipay_archive(app, keys_dir, DAY)
    [detail] = [info for info in archive.infolist() if "汇总".encode("gbk") not in
                info.filename.encode("cp437")]
    lines = archive.read(detail).decode("gbk").split("\r\n")
    assert lines[4] == ALIPAY_DETAIL_HEADER
    assert lines[5].startswith("#---") and lines[6].startswith("#交易合计：0笔")


def wechat_bill(merchant: Merchant, bill_date: date, gzipped: bool = False) -> tuple[str, dict[str, Any]]:
    """The bill file and the answer that named it, fetched with requests signed by
    wechatpayv3 (the merchant helper) and the answer's signature checked with it."""
    query = f"bill_date={bill_date.isoformat()}&bill_type=ALL" + ("&tar_type=GZIP" if gzipped else "")
    answer = merchant.call("GET", f"/v3/bill/tradebill?{query}")
    assert answer.status_code == 200, answer.text
    assert merchant.verifies(answer)
    fields = answer.json()
    assert fields["download_url"].startswith(API_BASE + "/v3/billdownload/file?token=")
    download = merchant.call("GET", fields["download_url"][len(API_BASE):])
    assert download.status_code == 200
    assert "Wechatpay-Signature" not in download.headers  # files come unsigned
    payload = gzip.decompress(download.content) if gzipped else download.content
    assert fields["hash_type"] == "SHA1"
    assert fields["hash_value"] == hashlib.sha1(payload).hexdigest()
    return payload.decode("utf-8"), fields


def test_the_wechat_bill_is_the_csv_wechat_pay_writes(
    merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    pay_wechat(merchant, client, "W20261120000001", 9450)
    at_beijing(clock, "2026-11-20 10:05:00")
    refund_id = refund_wechat(merchant, "W20261120000001", "WR1", 4000, 9450)
    at_beijing(clock, "2026-11-21 09:00:00")
    paid = merchant.query("W20261120000001").json()

    text, _ = wechat_bill(merchant, DAY)
    lines = text.split("\r\n")
    assert lines[0] == WECHAT_HEADER
    assert lines[1].split(",") == [
        "`2026-11-20 10:00:00", "`wx0000000000000001", "`1900000001", "`0", "`",
        f"`{paid['transaction_id']}", "`W20261120000001", f"`{paid['payer']['openid']}", "`NATIVE",
        "`SUCCESS", "`OTHERS", "`CNY", "`94.50", "`0.00", "`0", "`0", "`0.00", "`0.00", "`", "`",
        "`Python 入门课", "`", "`0.57000", "`0.60%", "`94.50", "`0.00", "`",
    ]
    refund = lines[2].split(",")
    assert refund[0] == "`2026-11-20 10:05:00"
    assert refund[9:] == [
        "`REFUND", "`OTHERS", "`CNY", "`0.00", "`0.00", f"`{refund_id}", "`WR1", "`40.00", "`0.00",
        "`ORIGINAL", "`SUCCESS", "`Python 入门课", "`", "`-0.24000", "`0.60%", "`94.50", "`40.00", "`",
    ]
    by_name = dict(zip(WECHAT_HEADER.split(","), refund))
    # No vouchers in the emulator: what was asked is what was refunded.
    assert by_name["申请退款金额"] == by_name["退款金额"] == "`40.00"
    assert lines[3:] == [
        WECHAT_SUMMARY_HEADER, "`2,`94.50,`40.00,`0.00,`0.33000,`189.00,`40.00", ""
    ]
    gzipped, _ = wechat_bill(merchant, DAY, gzipped=True)
    assert gzipped == text


def test_an_empty_wechat_day_still_has_its_headers(merchant: Merchant, clock: Clock) -> None:
    at_beijing(clock, "2026-11-21 09:00:00")
    text, _ = wechat_bill(merchant, DAY)
    assert text.split("\r\n") == [
        WECHAT_HEADER, WECHAT_SUMMARY_HEADER, "`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00", ""
    ]


def test_the_emulators_no_bill_yet_answers_are_the_channels_own(
    app: Flask, merchant: Merchant, clock: Clock, gateway_public_key: RsaKey
) -> None:
    at_beijing(clock, "2026-11-20 23:59:59")
    answer = merchant.call("GET", "/v3/bill/tradebill?bill_date=2026-11-20&bill_type=ALL")
    assert (answer.status_code, answer.json()["code"]) == (400, "STATEMENT_CREATING")
    assert merchant.verifies(answer)
    method = "alipay.data.dataservice.bill.downloadurl.query"
    body = post_signed(app, method, {"bill_type": "trade", "bill_date": "2026-11-20"}).text
    node_text, sign = extract_response_node(body, method)
    assert sign and rsa2_verify(node_text.encode(), sign, gateway_public_key)
    node = json.loads(node_text)
    assert (node["code"], node["sub_code"], node["sub_msg"]) == ("40004", "isp.bill_not_exist", "账单不存在")


@pytest.mark.parametrize(
    "biz", [{"bill_type": "signcustomer", "bill_date": "2026-11-19"},
            {"bill_type": "trade", "bill_date": "2026-11"},
            {"bill_type": "trade", "bill_date": "2026-02-30"}]
)
def test_bills_the_emulator_does_not_keep_are_invalid_arguments(
    app: Flask, biz: dict[str, str]
) -> None:
    method = "alipay.data.dataservice.bill.downloadurl.query"
    node_text, _ = extract_response_node(post_signed(app, method, biz).text, method)
    assert json.loads(node_text)["sub_code"] == "isv.invalid_arguments"


# --- what goes wrong on the way ----------------------------------------------------------


def tamper_downloads(app: Flask, path_part: str, change: Callable[[bytes], bytes]) -> None:
    """Have every response whose URL contains ``path_part`` arrive changed."""

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        if path_part in (response.url or ""):
            response.raw = io.BytesIO(change(response.raw.read()))
            response.headers.pop("Content-Length", None)
        return response

    app.extensions["cashier.http"].hooks["response"].append(hook)


def test_a_wechat_file_that_does_not_match_its_hash_is_refused(
    app: Flask, wechat: WechatChannel, merchant: Merchant, client: FlaskClient, clock: Clock
) -> None:
    pay_wechat(merchant, client, "W20261120000001", 9450)
    at_beijing(clock, "2026-11-21 09:00:00")
    tamper_downloads(app, "/v3/billdownload/", lambda body: body.replace(b"`0.57000", b"`0.00000"))
    with pytest.raises(MalformedBill, match="SHA1"):
        wechat.download_bill(DAY)


def test_a_corrupt_alipay_zip_is_refused(
    app: Flask, channel: AlipayChannel, client: FlaskClient, clock: Clock
) -> None:
    pay_alipay(channel, client, clock, "A20261120000001", 9450)
    at_beijing(clock, "2026-11-21 09:00:00")
    tamper_downloads(app, "downloadBillFile", lambda body: body[:40] + b"\x00" * 8 + body[48:])
    with pytest.raises(MalformedBill, match="does not decompress"):  # its local name is broken
        channel.download_bill(DAY)


def test_an_expired_alipay_address_is_asked_again_not_trusted(
    app: Flask, channel: AlipayChannel, clock: Clock
) -> None:
    at_beijing(clock, "2026-11-21 09:00:00")
    session: requests.Session = app.extensions["cashier.http"]
    original_get = session.get

    def late_get(url: str, **kwargs: Any) -> requests.Response:
        clock.advance(seconds=31)  # Alipay's addresses live 30 seconds
        return original_get(url, **kwargs)

    session.get = late_get  # type: ignore[method-assign]
    with pytest.raises(UnknownResult, match="HTTP 404"):
        channel.download_bill(DAY)


def test_an_unavailable_gateway_is_an_unknown_result(
    app: Flask, channel: AlipayChannel, wechat: WechatChannel, clock: Clock
) -> None:
    at_beijing(clock, "2026-11-21 09:00:00")
    with app.app_context():
        faults.set_fault("api_error", "*")
        db.session.commit()
    for adapter in (channel, wechat):
        with pytest.raises(UnknownResult):
            adapter.download_bill(DAY)
