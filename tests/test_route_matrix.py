"""Who may reach what: every route the app registers outside the Flask-Admin views, tried
as each kind of visitor, answers as the EXPECTED table says.

The Flask-Admin views (every rule whose blueprint is an admin view's endpoint, the admin
index included) are tests/admin/test_access_matrix.py's, checked against
app/admin/permissions.py; EXPECTED holds every other rule, and
`test_every_route_is_in_one_matrix` fails when a rule the app registers is in neither,
so a route added later cannot go unchecked.

Object URLs name things of Ann, the learner: her paid and pending orders, her API token,
her order in the API. The earnings URLs carry no instructor id and serve the signed-in
instructor's own statements, so another instructor, who has none for the month, must
not get Lin's. Everyone else is checked against Ann's objects, and nothing of Ann's (her
e-mail, her order numbers) may show in what they get.

One world per visitor: the visitor's requests run in REQUESTS' order (the last ones
change or end the visitor's session), mismatches are collected, and the world is then
checked for what the visitor's POSTs must, and must not, have changed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.accounts.models import ApiToken
from app.accounts.services import create_token, create_user, user_for_token
from app.bundles.models import Bundle
from app.catalog.models import Course
from app.checkout.models import Order
from app.checkout.services import current_attempt
from app.config import EMULATOR_ALIPAY_APP_ID, EMULATOR_WECHAT_MCH_ID
from app.earnings.statements import close_statement
from app.extensions import db
from app.gateway import faults
from app.invoices import services as invoices
from app.invoices.models import InvoiceRequest
from app.membership.models import MembershipPlan
from app.money import format_yuan
from app.payments.models import Refund
from app.receipts.models import Receipt
from tests.admin.test_access_matrix import admin_routes
from tests.conftest import Clock
from tests.earnings_helpers import make_course_of, make_instructor, sell
from tests.helpers import app_time, attempt_of, authenticators, checkout, login, make_coupon

VISITORS = ("anonymous", "learner", "other_learner", "instructor", "other_instructor",
            "support", "finance", "admin", "password_only")
PASSWORD = "matrix-password-1"
EMAILS = {
    "learner": "ann@example.com",
    "other_learner": "bob@example.com",
    "instructor": "lin@example.com",
    "other_instructor": "oscar@example.com",
    "support": "sam@example.com",
    "finance": "fay@example.com",
    "admin": "ada@example.com",
    "password_only": "sue@example.com",
}
ROLES = {"learner": "learner", "other_learner": "learner", "instructor": "instructor",
         "other_instructor": "instructor", "support": "support", "finance": "finance", "admin": "admin",
         "password_only": "support"}
NEWCOMER = "newcomer@example.com"  # whom the anonymous visitor registers, then logs in as
CLOSED_PERIOD = "2026-10"  # Lin's closed month

# The answers:
#   ok      2xx, or a redirect that is the page's own flow (to where REQUESTS says, if it does)
#   login   302 to /login                 2fa  302 to the second-factor page
#   401 403 404                           that status (404: someone else's object is "not there")
#   buy     302 to the course page (a lesson of a course the visitor does not own)
#   kept    302 back to the form's page, and Ann's object unchanged
#   reject  the channel's failure answer to a callback (Alipay "failure", WeChat Pay 400 FAIL)
#   nosig   the emulated channel's refusal of a request the merchant did not sign
ANSWERS = frozenset({"ok", "login", "2fa", "401", "403", "404", "buy", "kept", "reject", "nosig"})

# One word per visitor, in VISITORS order: anonymous; Ann, the learner whose objects the
# URLs name; Bob, another learner; Lin, the instructor who teaches Ann's courses; Oscar,
# another instructor; Sam (support), Fay (finance) and Ada (admin), past their second
# factor; Sue (support), signed in with her password but not yet her second factor.
EXPECTED: dict[tuple[str, str], str] = {
    #                                                   anon   ann    bob    lin    oscar  sam    fay    ada    sue
    ("static", "GET"):                                 "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("admin.static", "GET"):                           "ok     ok     ok     ok     ok     ok     ok     ok     2fa",
    ("health.healthz", "GET"):                         "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    # The test client comes from 127.0.0.1 and no METRICS_TOKEN is set (tests/test_metrics.py).
    ("observability.metrics", "GET"):                  "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    # The language switch is everyone's, on every page, the second-factor pages included.
    ("language.choose", "POST"):                       "ok     ok     ok     ok     ok     ok     ok     ok     ok",

    # The catalog is open; a lesson only to whoever owns its course.
    ("catalog.index", "GET"):                          "ok     ok     ok     ok     ok     ok     ok     ok     2fa",
    ("catalog.course", "GET"):                         "ok     ok     ok     ok     ok     ok     ok     ok     2fa",
    ("catalog.lesson", "GET"):                         "buy    ok     buy    buy    buy    buy    buy    buy    2fa",
    ("catalog.my_courses", "GET"):                     "login  ok     ok     ok     ok     ok     ok     ok     2fa",
    # Renewal is for a course one holds with limited access; Ann's has lifetime access, so
    # she too is sent back to the course page, like everyone who does not own it.
    ("renewal.renew", "GET"):                          "login  buy    buy    buy    buy    buy    buy    buy    2fa",
    ("renewal.renew", "POST"):                         "login  buy    buy    buy    buy    buy    buy    buy    2fa",

    # Accounts: everyone's own; the second factor is staff's; a password alone opens nothing
    # (Sue passes her second factor in REQUESTS' last block, so she signs up as one who is in).
    ("accounts.register", "GET"):                      "ok     ok     ok     ok     ok     ok     ok     ok     2fa",
    ("accounts.register", "POST"):                     "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("accounts.login", "GET"):                         "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("accounts.login", "POST"):                        "ok     ok     ok     ok     ok     2fa    2fa    2fa    2fa",
    ("accounts.logout", "POST"):                       "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("accounts.enrol_second_factor", "GET"):           "login  403    403    403    403    2fa    2fa    2fa    2fa",
    ("accounts.enrol_second_factor", "POST"):          "login  403    403    403    403    2fa    2fa    2fa    2fa",
    ("accounts.verify_second_factor", "GET"):          "login  403    403    403    403    ok     ok     ok     ok",
    ("accounts.verify_second_factor", "POST"):         "login  403    403    403    403    ok     ok     ok     ok",
    ("accounts.account", "GET"):                       "login  ok     ok     ok     ok     ok     ok     ok     2fa",
    ("accounts.create_token", "POST"):                 "login  ok     ok     ok     ok     ok     ok     ok     2fa",
    ("accounts.revoke_token", "POST"):                 "login  ok     kept   kept   kept   kept   kept   kept   2fa",

    # Everyone signed in has a cart and orders of their own.
    ("cart.view", "GET"):                              "login  ok     ok     ok     ok     ok     ok     ok     2fa",
    ("cart.add", "POST"):                              "login  ok     ok     ok     ok     ok     ok     ok     2fa",
    ("cart.remove", "POST"):                           "login  ok     ok     ok     ok     ok     ok     ok     2fa",
    ("cart.apply_coupon", "POST"):                     "login  ok     ok     ok     ok     ok     ok     ok     2fa",
    ("cart.remove_coupon", "POST"):                    "login  ok     ok     ok     ok     ok     ok     ok     2fa",
    ("cart.checkout", "POST"):                         "login  ok     ok     ok     ok     ok     ok     ok     2fa",
    # Bundles and membership plans are open to read; buying needs an account.
    ("bundles.bundle", "GET"):                         "ok     ok     ok     ok     ok     ok     ok     ok     2fa",
    ("bundles.add_to_cart", "POST"):                   "login  ok     ok     ok     ok     ok     ok     ok     2fa",
    ("membership.plans", "GET"):                       "ok     ok     ok     ok     ok     ok     ok     ok     2fa",
    ("membership.buy", "POST"):                        "login  ok     ok     ok     ok     ok     ok     ok     2fa",
    ("checkout.my_orders", "GET"):                     "login  ok     ok     ok     ok     ok     ok     ok     2fa",
    ("wallet.index", "GET"):                           "login  ok     ok     ok     ok     ok     ok     ok     2fa",
    ("wallet.topup", "POST"):                          "login  ok     ok     ok     ok     ok     ok     ok     2fa",

    # Ann's orders do not exist for anyone else (staff see orders in /admin). The poller
    # reads JSON, so the status answers a password-only session with a 401 of its own
    # ("second_factor_required") instead of the redirect (app/checkout/status_poll.py).
    ("checkout.pay", "GET"):                           "login  ok     404    404    404    404    404    404    2fa",
    ("checkout.status", "GET"):                        "401    ok     404    404    404    404    404    404    401",
    ("checkout.retry", "POST"):                        "login  ok     404    404    404    404    404    404    2fa",
    ("checkout.switch", "POST"):                       "login  ok     404    404    404    404    404    404    2fa",
    ("checkout.request_refund", "GET"):                "login  ok     404    404    404    404    404    404    2fa",
    ("checkout.request_refund", "POST"):               "login  ok     404    404    404    404    404    404    2fa",
    ("invoices.request_invoice", "GET"):               "login  ok     404    404    404    404    404    404    2fa",
    ("invoices.request_invoice", "POST"):              "login  ok     404    404    404    404    404    404    2fa",
    ("invoices.download", "GET"):                      "login  ok     404    404    404    404    404    404    2fa",

    # A receipt is its learner's and staff's; checking one, and the public key, are everyone's.
    ("receipts.receipt", "GET"):                       "login  ok     404    404    404    ok     ok     ok     2fa",
    ("receipts.receipt_pdf_download", "GET"):          "login  ok     404    404    404    ok     ok     ok     2fa",
    ("receipts.verify", "GET"):                        "ok     ok     ok     ok     ok     ok     ok     ok     2fa",
    ("receipts.verify", "POST"):                       "ok     ok     ok     ok     ok     ok     ok     ok     2fa",
    ("receipts.public_key", "GET"):                    "ok     ok     ok     ok     ok     ok     ok     ok     2fa",

    # An instructor's own earnings; the other instructor has no statement for the month.
    ("earnings.index", "GET"):                         "login  403    403    ok     ok     403    403    403    2fa",
    ("earnings.statement", "GET"):                     "login  403    403    ok     404    403    403    403    2fa",
    ("earnings.statement_csv_download", "GET"):        "login  403    403    ok     404    403    403    403    2fa",
    ("earnings.statement_pdf_download", "GET"):        "login  403    403    ok     404    403    403    403    2fa",
    ("earnings.bank_account", "GET"):                  "login  403    403    ok     ok     403    403    403    2fa",
    ("earnings.bank_account", "POST"):                 "login  403    403    ok     ok     403    403    403    2fa",

    # The API takes the visitor's own bearer token, never the session.
    ("api.courses", "GET"):                            "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("api.create_order", "POST"):                      "401    ok     ok     ok     ok     ok     ok     ok     ok",
    ("api.get_order", "GET"):                          "401    ok     404    404    404    404    404    404    404",

    # Callbacks count a signature, never the sender.
    ("payments.notify", "POST"):                       "reject reject reject reject reject reject reject reject reject",

    # The emulator is the channel: its pages are the payer's phone and the operator's desk,
    # open to anyone; its API answers the merchant's signature, not a session.
    ("gateway.index", "GET"):                          "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("gateway.alipay_index", "GET"):                   "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("gateway.fault_on", "POST"):                      "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("gateway.fault_off", "POST"):                     "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("gateway.faults_off", "POST"):                    "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("gateway.alipay_qr", "GET"):                      "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("gateway.alipay_confirm", "POST"):                "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("gateway.alipay_cancel", "POST"):                 "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("gateway.wechat_qr", "GET"):                      "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("gateway.wechat_confirm", "POST"):                "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("gateway.wechat_cancel", "POST"):                 "ok     ok     ok     ok     ok     ok     ok     ok     ok",
    ("gateway.alipay_gateway", "POST"):                "nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig",
    ("gateway.alipay_bill_file", "GET"):               "nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig",
    ("gateway.wechat_native", "POST"):                 "nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig",
    ("gateway.wechat_query_by_out_trade_no", "GET"):   "nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig",
    ("gateway.wechat_query_by_transaction_id", "GET"): "nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig",
    ("gateway.wechat_close", "POST"):                  "nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig",
    ("gateway.wechat_refund", "POST"):                 "nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig",
    ("gateway.wechat_refund_query", "GET"):            "nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig",
    ("gateway.wechat_tradebill", "GET"):               "nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig",
    ("gateway.wechat_bill_file", "GET"):               "nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig  nosig",
}

Body = Mapping[str, Any] | str | None


@dataclass
class World:
    """One visitor's client and the objects the URLs name, with their values for the
    placeholders of REQUESTS ({paid}, {pending}, ...)."""

    app: Flask
    visitor: str
    client: FlaskClient
    values: dict[str, Any]
    tokens: dict[str, str] = field(default_factory=dict)  # bearer token by visitor

    def url(self, template: str) -> str:
        return template.format(**self.values)

    def second_factor_code(self) -> str:
        """The visitor's authenticator's code now (a recovery code once both codes of the
        frozen clock's step are used); any code for one who has no second factor."""
        keeper = authenticators(self.app).get(EMAILS.get(self.visitor, ""))
        if keeper is None:
            return "000000"
        return keeper.next_code(app_time(self.app)) or keeper.recovery_codes.pop()


@dataclass(frozen=True)
class Call:
    """How to call a route.

    ``data`` is a form (its values formatted with the world's values), a raw body with
    ``content_type``, or a function of the world giving either; ``json`` a function of the
    world giving a JSON body; ``bearer`` sends the visitor's own API token; ``then`` is
    where an "ok" redirect must lead (a prefix)."""

    url: str
    data: Body | Callable[[World], Body] = None
    content_type: str | None = None
    json: Callable[[World], Mapping[str, Any]] | None = None
    bearer: bool = False
    then: str | None = None

    def options(self, world: World) -> dict[str, Any]:
        if self.json is not None:
            options: dict[str, Any] = {"json": self.json(world)}
        elif callable(self.data):
            options = {"data": self.data(world)}
        elif isinstance(self.data, Mapping):
            options = {"data": {name: world.url(value) for name, value in self.data.items()}}
        else:
            options = {"data": self.data}
        if self.content_type:
            options["content_type"] = self.content_type
        if self.bearer and world.visitor in world.tokens:
            options["headers"] = {"Authorization": f"Bearer {world.tokens[world.visitor]}"}
        return options


def forged_alipay_callback(world: World) -> dict[str, str]:
    """A trade-success callback for Ann's pending order, right in all but the signature,
    which it lacks."""
    return {
        "notify_time": "2026-11-20 10:00:00", "notify_type": "trade_status_sync", "notify_id": "matrix-1",
        "app_id": EMULATOR_ALIPAY_APP_ID, "charset": "utf-8", "version": "1.0", "sign_type": "RSA2",
        "trade_no": "2026112022001400000000000001", "out_trade_no": world.values["pending_trade"],
        "trade_status": "TRADE_SUCCESS", "total_amount": world.values["pending_yuan"],
        "gmt_payment": "2026-11-20 10:00:00",
    }


def forged_wechat_callback(world: World) -> str:
    """A TRANSACTION.SUCCESS callback without the Wechatpay-Signature headers."""
    return json.dumps({
        "id": "matrix-1", "create_time": "2026-11-20T10:00:00+08:00", "event_type": "TRANSACTION.SUCCESS",
        "resource_type": "encrypt-resource", "summary": "支付成功",
        "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": "", "nonce": "", "associated_data": ""},
    })


def unsigned_alipay_call(world: World) -> dict[str, str]:
    return {"method": "alipay.trade.query", "app_id": EMULATOR_ALIPAY_APP_ID, "charset": "utf-8",
            "sign_type": "RSA2", "timestamp": "2026-11-20 10:00:00", "version": "1.0",
            "biz_content": json.dumps({"out_trade_no": world.values["pending_trade"]})}


def bank_account_form(world: World) -> dict[str, str]:
    return {"account_holder": "林晓", "bank_name": "招商银行 北京分行",
            "account_number": "6222020200001234567", "password": PASSWORD}


def second_factor_form(world: World) -> dict[str, str]:
    return {"code": world.second_factor_code(), "next": "/account"}


def own_login(world: World) -> dict[str, str]:
    """The visitor's own e-mail and password; the anonymous visitor's newly registered."""
    return {"email": EMAILS.get(world.visitor, NEWCOMER), "password": PASSWORD}


NEWCOMER_FORM = {"email": NEWCOMER, "display_name": "Newcomer", "password": PASSWORD, "confirm": PASSWORD}
WECHAT_API = "/gateway/wechat/v3"

# How each route of EXPECTED is called, in the order the calls run; a third word in a key
# names one of several calls of a route. The last ones change or end the visitor's session.
REQUESTS: dict[tuple[str, ...], Call] = {
    ("static", "GET"): Call("/static/css/site.css"),
    ("admin.static", "GET"): Call("/admin/static/admin/js/helpers.js"),
    ("health.healthz", "GET"): Call("/healthz"),
    ("observability.metrics", "GET"): Call("/metrics"),
    ("language.choose", "POST"): Call("/language", data={"lang": "en", "next": "/"}, then="/"),

    ("catalog.index", "GET"): Call("/"),
    ("catalog.course", "GET"): Call("/courses/{slug}"),
    ("catalog.lesson", "GET"): Call("/courses/{slug}/lessons/1"),
    ("catalog.my_courses", "GET"): Call("/my/courses"),
    ("renewal.renew", "GET"): Call("/courses/{slug}/renew"),
    ("renewal.renew", "POST"): Call("/courses/{slug}/renew", data={"channel": "alipay"}),

    ("accounts.register", "GET"): Call("/register"),
    ("accounts.login", "GET"): Call("/login"),
    ("accounts.enrol_second_factor", "GET"): Call("/second-factor/setup"),
    ("accounts.enrol_second_factor", "POST"): Call("/second-factor/setup", data={"code": "123456"}),
    ("accounts.verify_second_factor", "GET"): Call("/second-factor"),
    ("accounts.account", "GET"): Call("/account"),
    ("accounts.create_token", "POST"): Call("/account/tokens", data={"name": "matrix"}),
    ("accounts.revoke_token", "POST"): Call("/account/tokens/{spare_token_id}/revoke", then="/account"),

    ("cart.view", "GET"): Call("/cart/"),
    ("cart.add", "POST"): Call("/cart/add/{cart_course}", then="/cart/"),
    ("cart.apply_coupon", "POST"): Call("/cart/coupon", data={"code": "MATRIX"}, then="/cart/"),
    ("cart.remove_coupon", "POST"): Call("/cart/coupon/remove", then="/cart/"),
    ("cart.checkout", "POST"): Call("/cart/checkout", data={"channel": "alipay"}, then="/orders/"),
    ("cart.remove", "POST"): Call("/cart/remove/{cart_course}", then="/cart/"),
    ("bundles.bundle", "GET"): Call("/bundles/matrix-bundle"),
    ("bundles.add_to_cart", "POST"): Call("/bundles/matrix-bundle/cart", then="/cart/"),
    ("membership.plans", "GET"): Call("/membership/"),
    ("membership.buy", "POST"): Call("/membership/{plan}/buy", data={"channel": "alipay"}, then="/orders/"),

    ("checkout.my_orders", "GET"): Call("/orders"),
    ("wallet.index", "GET"): Call("/wallet"),
    ("wallet.topup", "POST"): Call("/wallet/topup", data={"amount": "50", "channel": "alipay"}, then="/orders/"),
    ("checkout.pay", "GET"): Call("/orders/{pending}/pay"),
    ("checkout.status", "GET"): Call("/orders/{pending}/status"),
    ("checkout.retry", "POST"): Call("/orders/{pending}/qr", then="/orders/{pending}/pay"),
    ("checkout.switch", "POST"): Call("/orders/{pending}/channel", data={"channel": "wechat"},
                                      then="/orders/{pending}/pay"),
    ("checkout.request_refund", "GET"): Call("/orders/{paid}/refund"),
    ("checkout.request_refund", "POST"): Call("/orders/{paid}/refund", then="/orders",
                                              data={"reason": "Not the course for me", "lines": "{paid_line}"}),
    ("invoices.request_invoice", "GET"): Call("/orders/{paid}/invoice"),
    ("invoices.request_invoice", "POST"): Call("/orders/{paid}/invoice", then="/orders", data={
        "title_type": "personal", "title": "Ann", "tax_id": "", "email": "ann@example.com"}),
    ("invoices.download", "GET"): Call("/orders/{october}/invoices/{october_invoice}/file"),

    ("receipts.receipt", "GET"): Call("/receipts/{receipt}"),
    ("receipts.receipt_pdf_download", "GET"): Call("/receipts/{receipt}.pdf"),
    ("receipts.verify", "GET"): Call("/receipts/verify"),
    ("receipts.verify", "POST"): Call("/receipts/verify", data={"receipt": '{{"kind":"payment"}}', "signature": "AAAA"}),
    ("receipts.public_key", "GET"): Call("/receipts/public-key.pem"),

    ("earnings.index", "GET"): Call("/earnings/"),
    ("earnings.statement", "GET"): Call(f"/earnings/statements/{CLOSED_PERIOD}"),
    ("earnings.statement_csv_download", "GET"): Call(f"/earnings/statements/{CLOSED_PERIOD}.csv"),
    ("earnings.statement_pdf_download", "GET"): Call(f"/earnings/statements/{CLOSED_PERIOD}.pdf"),
    ("earnings.bank_account", "GET"): Call("/earnings/bank-account"),
    ("earnings.bank_account", "POST"): Call("/earnings/bank-account", data=bank_account_form, then="/earnings/"),

    ("api.courses", "GET"): Call("/api/v1/courses", bearer=True),
    ("api.create_order", "POST"): Call(
        "/api/v1/orders", bearer=True,
        json=lambda world: {"course_ids": [world.values["api_course"]], "channel": "alipay"}),
    ("api.get_order", "GET"): Call("/api/v1/orders/{paid}", bearer=True),

    ("payments.notify", "POST", "alipay"): Call("/notify/alipay", data=forged_alipay_callback),
    ("payments.notify", "POST", "wechat"): Call("/notify/wechat", data=forged_wechat_callback,
                                                content_type="application/json"),

    ("gateway.index", "GET"): Call("/gateway/"),
    ("gateway.alipay_index", "GET"): Call("/gateway/alipay/"),
    ("gateway.fault_on", "POST"): Call("/gateway/faults", then="/gateway/", data={
        "mode": "delay_notify", "channel": "*", "out_trade_no": "MATRIX-NONE", "delay_seconds": "0"}),
    ("gateway.fault_off", "POST"): Call("/gateway/faults/{fault_id}/clear", then="/gateway/"),
    ("gateway.faults_off", "POST"): Call("/gateway/faults/clear", then="/gateway/"),
    ("gateway.alipay_qr", "GET"): Call("/gateway/alipay/qr/{alipay_qr}"),
    ("gateway.alipay_cancel", "POST"): Call("/gateway/alipay/qr/{alipay_qr}/cancel"),
    ("gateway.alipay_confirm", "POST"): Call("/gateway/alipay/qr/{alipay_qr}/confirm"),
    ("gateway.wechat_qr", "GET"): Call("/gateway/wechat/qr/{wechat_qr}"),
    ("gateway.wechat_cancel", "POST"): Call("/gateway/wechat/qr/{wechat_qr}/cancel"),
    ("gateway.wechat_confirm", "POST"): Call("/gateway/wechat/qr/{wechat_qr}/confirm"),
    ("gateway.alipay_gateway", "POST"): Call("/gateway/alipay/gateway.do", data=unsigned_alipay_call),
    ("gateway.alipay_bill_file", "GET"): Call("/gateway/alipay/downloadBillFile.resource?token=forged"),
    ("gateway.wechat_native", "POST"): Call(
        f"{WECHAT_API}/pay/transactions/native", data='{"out_trade_no": "MATRIX-0001"}',
        content_type="application/json"),
    ("gateway.wechat_query_by_out_trade_no", "GET"): Call(
        WECHAT_API + "/pay/transactions/out-trade-no/{wechat_trade}?mchid=" + EMULATOR_WECHAT_MCH_ID),
    ("gateway.wechat_query_by_transaction_id", "GET"): Call(
        f"{WECHAT_API}/pay/transactions/id/4200000000000000000000000001?mchid=" + EMULATOR_WECHAT_MCH_ID),
    ("gateway.wechat_close", "POST"): Call(
        WECHAT_API + "/pay/transactions/out-trade-no/{wechat_trade}/close",
        data=json.dumps({"mchid": EMULATOR_WECHAT_MCH_ID}), content_type="application/json"),
    ("gateway.wechat_refund", "POST"): Call(
        f"{WECHAT_API}/refund/domestic/refunds", data='{"out_trade_no": "MATRIX-0001", "out_refund_no": "R1"}',
        content_type="application/json"),
    ("gateway.wechat_refund_query", "GET"): Call(f"{WECHAT_API}/refund/domestic/refunds/R1"),
    ("gateway.wechat_tradebill", "GET"): Call(f"{WECHAT_API}/bill/tradebill?bill_date=2026-11-19"),
    ("gateway.wechat_bill_file", "GET"): Call(f"{WECHAT_API}/billdownload/file?token=forged"),

    # Last: passing the second factor, signing up, in, and out.
    ("accounts.verify_second_factor", "POST"): Call("/second-factor", data=second_factor_form, then="/account"),
    ("accounts.register", "POST"): Call("/register", data=NEWCOMER_FORM, then="/"),
    ("accounts.login", "POST"): Call("/login", data=own_login, then="/"),
    ("accounts.logout", "POST"): Call("/logout", then="/"),
}



COURSES = {"history": 8000, "python": 10000, "waiting": 12000, "alipay-qr": 3000, "wechat-qr": 4000,
           "design": 5000, "sql": 6000, "bundled-one": 2000, "bundled-two": 3000}


def build_world(app: Flask, clock: Clock, visitor: str) -> World:
    """Ann bought Lin's "history" in October (a closed statement) and "python" today
    (still refundable), and has three orders waiting for payment: one for the order URLs
    and one at each channel for the emulator's pages. "design" (for the cart) and "sql"
    (for the API) are nobody's yet, nor the two courses of the bundle; a membership
    plan is on sale. Every staff member has set up a second factor."""
    clock.current = datetime(2026, 10, 10, 2, 0)
    with app.app_context():
        users = {name: create_user(email, PASSWORD, name.title(), role=ROLES[name]) for name, email in EMAILS.items()}
        db.session.commit()
        teacher = make_instructor("林晓", 7000, user_id=users["instructor"])
        make_instructor("Oscar", 7000, user_id=users["other_instructor"])
        courses = {slug: make_course_of(teacher, price, slug) for slug, price in COURSES.items()}
        october_id = sell(users["learner"], [courses["history"]])
        clock.current = datetime(2026, 11, 20, 2, 0)
        paid_id = sell(users["learner"], [courses["python"]])
        close_statement(teacher, CLOSED_PERIOD)
        make_coupon("MATRIX")
        # A bundle of two courses nobody owns, and a membership plan.
        db.session.add(Bundle(slug="matrix-bundle", title_zh="套餐", title_en="Bundle", price_fen=4000,
                              courses=[db.session.get(Course, courses[slug]) for slug in ("bundled-one", "bundled-two")]))
        plan = MembershipPlan(title_zh="月度会员", title_en="Monthly", price_fen=9900, period_days=30, pool_bps=5000)
        db.session.add(plan)
        db.session.flush()
        fault_id = faults.set_fault("drop_notify", out_trade_no="MATRIX-NONE")
        tokens = {name: create_token(user_id, "matrix") for name, user_id in users.items()}
        spare_token = create_token(users["learner"], "spare")
        october_invoice = invoices.request_invoice(
            october_id, users["learner"], invoices.InvoiceValues("personal", "Ann", "", EMAILS["learner"]))
        invoices.issue_invoice(october_invoice, users["finance"], "12345678", b"%PDF-1.4 matrix")
        db.session.commit()
        paid = db.session.get(Order, paid_id)
        values: dict[str, Any] = {
            "paid": paid.order_no,
            "paid_line": str(paid.lines[0].id),
            "receipt": db.session.scalar(select(Receipt.receipt_no).where(Receipt.order_id == paid_id)),
            "october": db.session.get(Order, october_id).order_no,
            "slug": "python",
            "cart_course": courses["design"],
            "api_course": courses["sql"],
            "plan": plan.id,
            "fault_id": fault_id,
            "october_invoice": october_invoice,
            "spare_token": spare_token,
            "spare_token_id": db.session.scalar(
                select(ApiToken.id).where(ApiToken.user_id == users["learner"], ApiToken.name == "spare")),
        }
    owner = app.test_client()
    login(owner, EMAILS["learner"], PASSWORD)
    values["pending"] = checkout(owner, [courses["waiting"]])
    values["alipay_order"] = checkout(owner, [courses["alipay-qr"]])
    values["wechat_order"] = checkout(owner, [courses["wechat-qr"]], channel="wechat")
    with app.app_context():
        waiting = attempt_of(values["pending"])
        values["pending_trade"] = waiting.out_trade_no
        values["pending_yuan"] = format_yuan(waiting.amount_fen)
        values["alipay_qr"] = attempt_of(values["alipay_order"]).qr_code.rstrip("/").rsplit("/", 1)[1]
        wechat = attempt_of(values["wechat_order"])
        values["wechat_trade"] = wechat.out_trade_no
        values["wechat_qr"] = wechat.qr_code.rstrip("/").rsplit("/", 1)[1]

    client = app.test_client()
    # Each visitor from an address of its own, as people are.
    client.environ_base["REMOTE_ADDR"] = f"198.51.100.{VISITORS.index(visitor) + 1}"
    if visitor == "password_only":
        login(app.test_client(), EMAILS[visitor], PASSWORD)  # set up on another day, say
        signed_in = client.post("/login", data={"email": EMAILS[visitor], "password": PASSWORD})
        assert urlsplit(signed_in.headers["Location"]).path == "/second-factor"
    elif visitor != "anonymous":
        login(client, EMAILS[visitor], PASSWORD)
    return World(app, visitor, client, values, tokens)


def _spare_token_works(world: World) -> bool:
    with world.app.app_context():
        return user_for_token(world.values["spare_token"]) is not None


def _channel_refused(response: TestResponse) -> bool:
    """The emulated channel refused the request for its missing signature: WeChat Pay's
    401 SIGN_ERROR, Alipay's error code in an HTTP 200, its file server's 404."""
    if response.status_code == 401:
        return (response.get_json(silent=True) or {}).get("code") == "SIGN_ERROR"
    if response.status_code == 404:
        return urlsplit(response.request.url).path.endswith("/downloadBillFile.resource")
    if response.status_code == 200 and response.is_json:
        nodes = [node for node in response.get_json().values() if isinstance(node, dict)]
        return bool(nodes) and all(node.get("sub_code") == "isv.missing-signature" for node in nodes)
    return False


def _callback_rejected(response: TestResponse) -> bool:
    if response.status_code == 200:
        return response.get_data(as_text=True) == "failure"  # Alipay's
    return response.status_code == 400 and (response.get_json(silent=True) or {}).get("code") == "FAIL"


def described(response: TestResponse) -> str:
    location = response.headers.get("Location")
    if location:
        return f"{response.status_code} to {location}"
    return f"{response.status_code} {response.get_data()[:80]!r}"


def wrong_answer(answer: str, response: TestResponse, call: Call, world: World) -> str | None:
    """None when ``response`` is ``answer``; else what came instead."""
    status, location = response.status_code, urlsplit(response.headers.get("Location", "")).path
    redirected = status in (302, 303)
    then = world.url(call.then) if call.then else None
    if answer == "ok":
        right = 200 <= status < 300 or (
            redirected and location not in ("/login", "/second-factor", "/second-factor/setup")
            and (then is None or location.startswith(then)))
    elif answer == "login":
        right = redirected and location == "/login"
    elif answer == "2fa":
        right = redirected and location == "/second-factor"
    elif answer == "buy":
        right = redirected and location == world.url("/courses/{slug}")
    elif answer == "kept":
        if redirected and location == then and not _spare_token_works(world):
            return f"{described(response)}, and Ann's token no longer works"
        right = redirected and location == then
    elif answer == "reject":
        right = _callback_rejected(response)
    elif answer == "nosig":
        right = _channel_refused(response)
    else:
        right = status == int(answer)
    return None if right else described(response)


def leaked(world: World, endpoint: str, url: str, response: TestResponse) -> list[str]:
    """Ann's e-mail and order numbers in what someone else got, but for those the URL
    named itself (a login redirect carries the URL back). The emulator is the channel,
    which knows every trade; Lin's statements list the sales of Lin's courses, Ann's
    paid orders among them."""
    if world.visitor == "learner" or endpoint.startswith("gateway."):
        return []
    if endpoint.startswith("receipts.") and ROLES.get(world.visitor) in ("support", "finance", "admin"):
        return []  # staff open any learner's receipt
    private = {EMAILS["learner"]} | {world.values[name] for name in ("pending", "alipay_order", "wechat_order")}
    if not (world.visitor == "instructor" and endpoint.startswith("earnings.")):
        private |= {world.values["paid"], world.values["october"]}
    text = response.get_data().decode("utf-8", "replace")
    return sorted(mark for mark in private if mark in text and mark not in url)


def world_after(world: World) -> dict[str, object]:
    with world.app.app_context():
        def order(name: str) -> Order:
            return db.session.scalar(select(Order).where(Order.order_no == world.values[name]))

        pending, paid = order("pending"), order("paid")
        return {
            "Ann's pending order": (pending.status, current_attempt(pending.id).channel),
            "refunds of Ann's paid order": len(db.session.scalars(
                select(Refund).where(Refund.order_id == paid.id)).all()),
            "Ann's spare token works": user_for_token(world.values["spare_token"]) is not None,
            "the orders paid at the emulator": (order("alipay_order").status, order("wechat_order").status),
            "invoice requests of Ann's paid order": len(db.session.scalars(
                select(InvoiceRequest).where(InvoiceRequest.order_id == paid.id)).all()),
        }


def expected_after(visitor: str) -> dict[str, object]:
    """Ann's own POSTs switched her order to WeChat Pay, asked for a refund and revoked
    her spare token; nobody else's changed anything of hers. Whoever opened the QR pages
    paid those two orders, as anyone holding a payment code can. Ann's POSTs also asked
for an invoice of her paid order."""
    owner = visitor == "learner"
    return {
        "Ann's pending order": ("pending", "wechat" if owner else "alipay"),
        "refunds of Ann's paid order": 1 if owner else 0,
        "Ann's spare token works": not owner,
        "the orders paid at the emulator": ("paid", "paid"),
        "invoice requests of Ann's paid order": 1 if owner else 0,
    }


@pytest.mark.parametrize("visitor", VISITORS)
def test_every_route_answers_the_visitor_as_the_table_says(app: Flask, clock: Clock, visitor: str) -> None:
    world = build_world(app, clock, visitor)
    routing = app.url_map.bind("cashier.test")
    mismatches = []
    for key, call in REQUESTS.items():
        endpoint, method = key[0], key[1]
        answer = EXPECTED[endpoint, method].split()[VISITORS.index(visitor)]
        url = world.url(call.url)
        parts = urlsplit(url)
        routed = routing.match(parts.path, method=method, query_args=parts.query)[0]
        assert routed == endpoint, f"{method} {url} is {routed}, not {endpoint}: fix REQUESTS"
        response = world.client.open(url, method=method, **call.options(world))
        wrong = wrong_answer(answer, response, call, world)
        if wrong is not None:
            mismatches.append(f"{method} {url} ({endpoint}): expected {answer}, got {wrong}")
        for mark in leaked(world, endpoint, url, response):
            mismatches.append(f"{method} {url} ({endpoint}): shows Ann's {mark}")
        response.close()
    after, expected = world_after(world), expected_after(visitor)
    mismatches += [f"afterwards, {name}: {after[name]!r}, expected {value!r}"
                   for name, value in expected.items() if after[name] != value]
    assert mismatches == [], "\n".join(mismatches)


def test_the_table_answers_for_every_visitor_and_every_route_is_called() -> None:
    for key, answers in EXPECTED.items():
        assert len(answers.split()) == len(VISITORS), key
        assert set(answers.split()) <= ANSWERS, key
    assert {(key[0], key[1]) for key in REQUESTS} == set(EXPECTED)


def test_every_route_is_in_one_matrix(app: Flask) -> None:
    """This table and the admin matrix together hold every rule of the URL map, each
    (endpoint, method) in exactly one of them, and neither names a route that is gone."""
    registered = {(rule.endpoint, method) for rule in app.url_map.iter_rules()
                  for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    in_admin_matrix = {(rule.endpoint, method) for _, _, rule, method in admin_routes(app)}
    in_this_table = set(EXPECTED)
    assert ("admin.index", "GET") in in_admin_matrix
    assert sorted(in_this_table & in_admin_matrix) == []
    assert sorted(registered - in_admin_matrix - in_this_table) == []
    assert sorted((in_this_table | in_admin_matrix) - registered) == []
    assert in_this_table | in_admin_matrix == registered
