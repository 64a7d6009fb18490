"""Bad input at the edges, generated (Hypothesis): `POST /notify/alipay`, `POST /notify/wechat`
and the JSON API v1 take garbage and near-misses, and every answer is clean.

For every generated request:

- the status is never 5xx (a notify 5xx means "a valid callback could not be stored",
  which cannot happen against a healthy test database);
- a refusal is the channel's own failure answer (Alipay: 200 ``failure``; WeChat Pay: a
  4xx ``{"code": "FAIL", "message": …}``), and an API refusal a 4xx JSON ``code`` + ``message``;
- nothing is stored as paid (attempt ``succeeded``, paid order, journal entry, enrollment)
  unless the input was a correctly signed callback for that attempt's exact amount, and then
  exactly that attempt is paid.

The notifications that matter most are correctly signed ones (signed with the test platform
keys through the independent oracles) with one field or another changed before or after
signing. Whether such a notification must be accepted, must be refused, or may go either way
is decided below from the providers' published rules (and where they are silent, the strict
reading: a repeated field, a malformed form or an oversized body is refused), never by asking
our adapters.

Each test builds its world once; after an example that stored something, a new learner's
orders take over, which is much cheaper than emptying the database. The last section holds
the smallest failing inputs found so far, one test per cause. `FUZZ_EXAMPLES` scales every
example count (1.0 by default).
"""
from __future__ import annotations

import base64
import functools
import io
import json
import os
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from wechatpayv3.utils import load_private_key, rsa_sign

from app.accounts.models import User
from app.accounts.services import create_token
from app.catalog.models import Course, Enrollment
from app.checkout.models import Order
from app.checkout.services import OrderRequest, current_attempt, place_order
from app.config import (
    EMULATOR_ALIPAY_APP_ID,
    EMULATOR_ALIPAY_SELLER_ID,
    EMULATOR_WECHAT_APP_ID,
    EMULATOR_WECHAT_MCH_ID,
    EMULATOR_WECHAT_PUBLIC_KEY_ID,
    RATE_LIMIT_DEFAULTS,
)
from app.extensions import db
from app.ledger.models import JournalEntry
from app.payments.models import InboxNotification, PaymentAttempt
from tests import wechat_oracle
from tests import alipay_oracle
from tests.alipay_oracle import notification_fields
from tests.helpers import make_coupon, make_course

SCALE = float(os.environ.get("FUZZ_EXAMPLES", "1"))
# Hundreds of examples a test from one address and one learner: far past the rate
# limits, which would answer 429 to most of them (tests/test_rate_limits.py tests those).
pytestmark = pytest.mark.app_config(**{name: "100000 per minute" for name in RATE_LIMIT_DEFAULTS})


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        derandomize=True,  # the same inputs on every run, so a failure is reproducible
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large],
    )


# --- the world: pending attempts nobody has paid -------------------------------------------

ALIPAY_FORM = "application/x-www-form-urlencoded"
MAIN_FEN, OTHER_FEN, WECHAT_FEN = 10000, 4990, 10000


def quick_learner(email: str) -> int:
    """A learner who never logs in: no password to hash (a real hash costs 150 ms)."""
    user = User(email=email, display_name=email.split("@")[0], role="learner", password_hash="!")
    db.session.add(user)
    db.session.flush()
    return user.id


def next_second(app: Flask) -> None:
    """Order numbers are the second plus six random digits: hundreds of orders within one
    frozen second would collide, so each renewal moves the injected clock on."""
    app.config["CLOCK"].advance(seconds=1)


@dataclass
class NotifyWorld:
    """A learner's three pending attempts: ``main`` (Alipay ¥100.00), ``other`` (Alipay ¥49.90,
    another order) and ``wechat`` (WeChat Pay ¥100.00).

    An example that stores anything is followed by `renew`: a new learner orders the same
    courses again (cheaper than emptying the database), and notification ids carry the
    generation, so no example meets an earlier one's inbox row.
    """

    app: Flask = field(repr=False)
    courses: dict[str, int] = field(default_factory=dict, repr=False)
    trades: dict[str, str] = field(default_factory=dict)  # name -> out_trade_no
    attempts: dict[str, tuple[str, int]] = field(default_factory=dict, repr=False)  # out_trade_no -> (channel, fen)
    generation: int = 0

    def build(self) -> NotifyWorld:
        with self.app.app_context():
            self.courses = {name: make_course(fen, slug=name)
                            for name, fen in (("main", MAIN_FEN), ("other", OTHER_FEN), ("wechat", WECHAT_FEN))}
        self.renew()
        return self

    def renew(self) -> None:
        self.generation += 1
        next_second(self.app)
        self.trades.clear()
        self.attempts.clear()
        with self.app.app_context():
            user_id = quick_learner(f"payer{self.generation}@example.com")
            for name, channel in (("main", "alipay"), ("other", "alipay"), ("wechat", "wechat")):
                order_id = place_order(OrderRequest(user_id, (self.courses[name],), None, channel))
                db.session.commit()
                attempt = current_attempt(order_id)
                self.trades[name] = attempt.out_trade_no
                self.attempts[attempt.out_trade_no] = (channel, attempt.amount_fen)

    def resolve(self, text: str) -> str:
        """``{main}``-style placeholders in generated text become this world's numbers."""
        for name, out_trade_no in self.trades.items():
            text = text.replace("{" + name + "}", out_trade_no)
            text = text.replace("{" + name + ":lower}", out_trade_no.lower())
        return text

    def unique(self, notification_id: str) -> str:
        return f"g{self.generation}-{notification_id}" if notification_id else notification_id


@pytest.fixture
def notify_world(app: Flask) -> NotifyWorld:
    return NotifyWorld(app).build()


@dataclass(frozen=True)
class MoneyState:
    succeeded: frozenset[str]
    paid_orders: int
    entries: int
    enrollments: int
    inbox: int


def money_state(app: Flask) -> MoneyState:
    with app.app_context():
        count = lambda column, *where: db.session.scalar(select(func.count(column)).where(*where))  # noqa: E731
        return MoneyState(
            succeeded=frozenset(db.session.scalars(
                select(PaymentAttempt.out_trade_no).where(PaymentAttempt.status == "succeeded"))),
            paid_orders=count(Order.id, Order.status == "paid"),
            entries=count(JournalEntry.id),
            enrollments=count(Enrollment.id),
            inbox=count(InboxNotification.id),
        )


@dataclass(frozen=True)
class Expected:
    """``verdict``: "accept", "refuse" or "either"; ``pays``: the out_trade_no an accepted
    callback pays (None when it is valid but not a payment, e.g. TRADE_CLOSED)."""

    verdict: str
    pays: str | None = None
    why: str = ""


def refuse(why: str) -> Expected:
    return Expected("refuse", why=why)


def loosen(expected: Expected, why: str) -> Expected:
    return Expected("either", expected.pays, why) if expected.verdict == "accept" else expected


def check_notify(world: NotifyWorld, before: MoneyState, response: Any, expected: Expected,
                 accepted: bool) -> None:
    """The answer agrees with the verdict, and exactly what was paid is paid: one attempt,
    one paid order, one journal entry, one enrollment, or nothing at all."""
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    if expected.verdict == "accept":
        assert accepted, f"a valid callback was refused ({expected.why}): {response.get_data()[:300]!r}"
    if expected.verdict == "refuse":
        assert not accepted, f"an invalid callback was accepted ({expected.why})"
    after = money_state(world.app)
    paid = {expected.pays} if accepted and expected.pays else set()
    assert after.succeeded == before.succeeded | paid
    grown = (after.paid_orders - before.paid_orders, after.entries - before.entries,
             after.enrollments - before.enrollments)
    assert grown == (len(paid),) * 3, grown
    if not accepted:
        assert after.inbox == before.inbox, "a refused callback was stored"
    if accepted or after.inbox != before.inbox:
        world.renew()


# Text that has broken parsers before: signs, exponents, full-width digits, blanks, NUL,
# control characters, bidi overrides, percent signs, separators, very long.
NASTY = [
    "", " ", "0", "-1", "1e3", "1E3", "９", "１００.００", "NaN", "nan", "Infinity", "-0", "0x10",
    "1_000", "100", "100.0", "100.000", "0100.00", "+100.00", "-100.00", "100.00 ", " 100.00",
    "100,00", "1,000.00", "0.00", "0.01", "49.90", "99.99", "100.01", "1000000000000.00",
    "9" * 40, "\x00", "a\x00b", "null", "[]", "{}", "%", "%%", "%zz", "&", "=", "a=b", "+",
    "课程", "\u202e", "\u200b", "\r\n", "\t", "x" * 300, "<script>", "' OR 1=1 --",
]
nasty_text = st.sampled_from(NASTY) | st.text(max_size=24)


# --- Alipay ----------------------------------------------------------------------------------

DELETE = None  # as a change: the field is left out
OUR_TRADES = ["{main}", "{other}", "{wechat}"]
ALIPAY_CHANGES: dict[str, st.SearchStrategy] = {
    "out_trade_no": st.sampled_from(OUR_TRADES + [
        "{main:lower}", "{main}X", " {main}", "{main} ", "{main}\x00", "X{main}",
        "CC20261120000000999999P01", "CC" + "9" * 100]) | nasty_text,
    "total_amount": st.sampled_from(["100.00", "100", "100.0", "49.90", "100.01", "99.99"]) | nasty_text,
    "app_id": st.sampled_from([EMULATOR_ALIPAY_APP_ID, EMULATOR_ALIPAY_APP_ID + " ",
                               "2021009999999999"]) | nasty_text,
    "seller_id": st.sampled_from([EMULATOR_ALIPAY_SELLER_ID, "2088009999999999",
                                  EMULATOR_ALIPAY_SELLER_ID + "\x00"]) | nasty_text,
    "trade_status": st.sampled_from(["TRADE_SUCCESS", "TRADE_FINISHED", "TRADE_CLOSED",
                                     "WAIT_BUYER_PAY", "trade_success", "TRADE_SUCCESS ",
                                     "TRADE_PENDING"]) | nasty_text,
    "notify_id": st.sampled_from(["n-2", "n" * 200, "n\x00"]) | nasty_text,
    "trade_no": st.sampled_from(["2026112022001400000002", "t" * 100]) | nasty_text,
    "gmt_payment": st.sampled_from(["2026-11-20 10:03:04", "0001-01-01 00:00:00",
                                    "9999-12-31 23:59:59", "2026-02-30 10:00:00",
                                    "2026-11-20T10:03:04", "2026-1-2 3:4:5"]) | nasty_text,
}
# Fields our adapter does not read: Alipay may add any of these, and currency-ish ones.
ALIPAY_EXTRA_KEYS = ["subject", "receipt_amount", "buyer_pay_amount", "notify_time", "charset",
                     "version", "trans_currency", "currency", "settle_currency", "refund_fee",
                     "passback_params", "buyer_id", "x", ""]
alipay_change_key = st.sampled_from(sorted(ALIPAY_CHANGES) + ALIPAY_EXTRA_KEYS) | st.text(
    string.ascii_letters + "_", min_size=1, max_size=10)


@st.composite
def alipay_change(draw: st.DrawFn) -> tuple[str, str | None]:
    key = draw(alipay_change_key)
    value = draw(st.none() | ALIPAY_CHANGES.get(key, nasty_text))
    return key, value


SIGN_TAMPERING = ["", "AAAA", "truncated", "flipped", "spaces", "other message"]
alipay_after_op = st.one_of(
    st.tuples(st.just("set"), alipay_change_key, nasty_text),
    st.tuples(st.just("drop"), st.sampled_from(["sign", "sign_type", "out_trade_no", "subject"])),
    st.tuples(st.just("dup"), alipay_change_key, nasty_text),
    st.tuples(st.just("sign"), st.sampled_from(SIGN_TAMPERING)),
    st.tuples(st.just("sign_type"), st.sampled_from(["RSA", "rsa2", "", "RSA2 ", "RSA2"])),
)
RAW_DAMAGE = [b"%", b"%zz", b"%C3%28", b"\xff", b"\xc3", b"&", b"&&", b";", b"=", b"\x00",
              b"%00", b"%ED%A0%80", b"\r\n", b"+"]


@dataclass(frozen=True)
class AlipayCase:
    target: str  # whose notification it starts as
    changes: tuple[tuple[str, str | None], ...]  # before signing
    signing: str  # "valid", "none" or "garbage"
    after: tuple[tuple[str, ...], ...]  # after signing
    encoding: str
    shuffle: int  # rotate the pairs by this much
    damage: tuple[tuple[int, bytes], ...]  # raw bytes inserted at positions
    content_type: str | None


alipay_cases = st.builds(
    AlipayCase,
    target=st.sampled_from(["main", "main", "other"]),
    changes=st.lists(alipay_change(), max_size=3).map(tuple),
    signing=st.sampled_from(["valid", "valid", "valid", "none", "garbage"]),
    after=st.lists(alipay_after_op, max_size=2).map(tuple),
    encoding=st.sampled_from(["plus", "percent", "escape all", "raw"]),
    shuffle=st.integers(0, 20),
    damage=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(RAW_DAMAGE)), max_size=2).map(tuple),
    content_type=st.sampled_from([ALIPAY_FORM, ALIPAY_FORM, ALIPAY_FORM + "; charset=utf-8",
                                  ALIPAY_FORM + "; charset=gbk", "application/json", None,
                                  "multipart/form-data; boundary=xyz", "text/plain"]),
)


@functools.cache
def alipay_sdk() -> Any:
    # The oracle builds a fresh SDK per signature (~150 ms of key loading): once is enough.
    return alipay_oracle._sdk()


def alipay_sign(fields: dict[str, str]) -> str:
    """The platform's RSA2 ``sign`` over ``fields``, by the independent SDK."""
    return dict(parse_qsl(alipay_sdk().sign_data(dict(fields))))["sign"]


def encode_form(pairs: list[tuple[str, str]], encoding: str) -> bytes:
    if encoding == "plus":
        text = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs)
    elif encoding == "percent":
        text = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    elif encoding == "escape all":
        escape = lambda s: "".join(f"%{b:02X}" for b in s.encode())  # noqa: E731
        text = "&".join(f"{escape(k)}={escape(v)}" for k, v in pairs)
    else:  # raw: nothing escaped, as a careless sender would
        text = "&".join(f"{k}={v}" for k, v in pairs)
    return text.encode("utf-8", errors="surrogatepass")


YUAN = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]{1,2}))?")


def strict_fen(text: str) -> int | None:
    """Alipay's amount format: yuan, at most two decimals, ASCII digits, nothing else."""
    match = YUAN.fullmatch(text)
    return int(match[1]) * 100 + int((match[2] or "").ljust(2, "0")) if match else None


def plausible_id(text: str) -> bool:
    """An identifier a channel could really send: printable ASCII, at most 64 characters."""
    return 0 < len(text) <= 64 and all(32 < ord(c) < 127 for c in text)


def media_type(content_type: str | None) -> str:
    """The type and subtype of a Content-Type header, without its parameters."""
    return (content_type or "").split(";")[0].strip().lower()


def alipay_expectation(world: NotifyWorld, body: bytes, signed_over: dict[str, str],
                       sign: str | None, content_type: str | None) -> Expected:
    """Alipay's rules for an asynchronous notification (open platform docs, RSA2)."""
    if len(body) > 64 * 1024:
        return refuse("over 64 KiB")
    if media_type(content_type) != ALIPAY_FORM:
        return refuse("not labelled as a form")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
                          errors="strict")
    except ValueError:
        return refuse("not a UTF-8 form")
    fields = dict(pairs)
    if len(fields) != len(pairs):
        return refuse("a field is repeated")
    if fields.get("sign_type") != "RSA2" or sign is None or fields.get("sign") != sign:
        return refuse("not signed with RSA2")
    # Verified over every non-empty parameter but sign and sign_type.
    if {k: v for k, v in fields.items() if v and k not in ("sign", "sign_type")} != signed_over:
        return refuse("changed after signing")
    if fields.get("app_id") != EMULATOR_ALIPAY_APP_ID or fields.get("seller_id") != EMULATOR_ALIPAY_SELLER_ID:
        return refuse("another merchant")
    if not all(fields.get(name) for name in ("notify_id", "out_trade_no", "trade_no", "trade_status",
                                               "total_amount")):
        return refuse("a required field is missing")
    status = fields["trade_status"]
    if status not in ("TRADE_SUCCESS", "TRADE_FINISHED", "TRADE_CLOSED", "WAIT_BUYER_PAY"):
        return refuse("unknown trade_status")
    channel, amount_fen = world.attempts.get(fields["out_trade_no"], (None, None))
    if channel != "alipay":
        return refuse("not one of our Alipay attempts")
    if strict_fen(fields["total_amount"]) != amount_fen:
        return refuse("not the attempt's amount")
    expected = Expected("accept", fields["out_trade_no"] if status in ("TRADE_SUCCESS", "TRADE_FINISHED")
                        else None, "signed, ours, exact amount")
    if fields.get("gmt_payment", "") not in ("", "2026-11-20 10:03:04"):
        expected = loosen(expected, "odd gmt_payment")
    if not (plausible_id(fields["notify_id"]) and plausible_id(fields["trade_no"])):
        expected = loosen(expected, "odd notify_id or trade_no")
    return expected


def build_alipay(world: NotifyWorld, case: AlipayCase) -> tuple[bytes, Expected]:
    out_trade_no = world.trades[case.target]
    fields = notification_fields(out_trade_no, world.attempts[out_trade_no][1])
    for key, value in case.changes:
        if value is DELETE:
            fields.pop(key, None)
        else:
            fields[key] = world.resolve(value)
    if "notify_id" in fields:
        fields["notify_id"] = world.unique(fields["notify_id"])
    signed_over = {k: v for k, v in fields.items() if v}  # Alipay never signs empty values
    sign = alipay_sign(signed_over) if signed_over and case.signing == "valid" else None
    sent = {"valid": sign, "none": None, "garbage": "c2lnbg=="}[case.signing]
    pairs = list(fields.items()) + ([("sign", sent)] if sent is not None else []) + [("sign_type", "RSA2")]
    for op in case.after:
        pairs = _alipay_after(pairs, op, world, signed_over)
    if pairs and case.shuffle:
        turn = case.shuffle % len(pairs)
        pairs = pairs[turn:] + pairs[:turn]
    body = encode_form(pairs, case.encoding)
    for position, snippet in case.damage:
        at = position % (len(body) + 1)
        body = body[:at] + snippet + body[at:]
    return body, alipay_expectation(world, body, signed_over, sign, case.content_type)


def _alipay_after(pairs: list[tuple[str, str]], op: tuple[str, ...], world: NotifyWorld,
                  signed_over: dict[str, str]) -> list[tuple[str, str]]:
    kind, *args = op
    if kind == "set":
        key, value = args[0], world.resolve(args[1])
        return [(k, value if k == key else v) for k, v in pairs] + ([] if any(k == key for k, _ in pairs)
                                                                     else [(key, value)])
    if kind == "drop":
        return [(k, v) for k, v in pairs if k != args[0]]
    if kind == "dup":
        return pairs + [(args[0], world.resolve(args[1]))]
    if kind == "sign_type":
        return [(k, args[0] if k == "sign_type" else v) for k, v in pairs]
    original = dict(pairs).get("sign") or alipay_sign({"x": "y"})
    forged = {
        "": "", "AAAA": "AAAA", "truncated": original[:-4], "spaces": original.replace("+", " "),
        "flipped": ("B" if original[0] == "A" else "A") + original[1:],
        "other message": alipay_sign({**signed_over, "total_amount": "0.01"}),
    }[args[0]]
    return [(k, v) for k, v in pairs if k != "sign"] + [("sign", forged)]


def post_alipay(client: FlaskClient, body: bytes, content_type: str | None) -> tuple[Any, bool]:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/notify/alipay", data=body, headers=headers)
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    assert response.status_code == 200 and response.text in ("success", "failure"), (
        response.status_code, response.get_data()[:300])
    return response, response.text == "success"


@fuzz(100)
@given(body=st.binary(max_size=600) | st.text(max_size=300).map(lambda t: t.encode("utf-8")),
       content_type=st.sampled_from([ALIPAY_FORM, "application/json", None, "multipart/form-data; boundary=b"]))
def test_alipay_notify_refuses_arbitrary_bytes(notify_world, client, body, content_type):
    before = money_state(notify_world.app)
    response, accepted = post_alipay(client, body, content_type)
    check_notify(notify_world, before, response, refuse("arbitrary bytes"), accepted)


@fuzz(200)
@given(case=alipay_cases)
def test_alipay_notify_pays_only_a_signed_notification_for_the_exact_amount(notify_world, client, case):
    body, expected = build_alipay(notify_world, case)
    before = money_state(notify_world.app)
    response, accepted = post_alipay(client, body, case.content_type)
    check_notify(notify_world, before, response, expected, accepted)


# --- WeChat Pay ------------------------------------------------------------------------------

DEPTH = 5000
DEEP = "<5000 nested arrays>"  # expanded when the body is built, so a failure report stays short


def expand_deep(text: str) -> str:
    return text.replace(DEEP, "[" * DEPTH + "]" * DEPTH)


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                      st.sampled_from(NASTY + ["\ud800", "\udfff"]), st.text(max_size=12))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)

TX_CHANGES: dict[str, st.SearchStrategy] = {
    "appid": st.sampled_from([EMULATOR_WECHAT_APP_ID, "wx9999999999999999", EMULATOR_WECHAT_APP_ID.upper()]),
    "mchid": st.sampled_from([EMULATOR_WECHAT_MCH_ID, "1900000999", int(EMULATOR_WECHAT_MCH_ID)]),
    "out_trade_no": st.sampled_from(OUR_TRADES + ["{wechat:lower}", "{wechat}X", " {wechat}", "{wechat}\x00",
                                                  "{wechat}\ud800", "CC20261120000000999999P01", "", "9" * 100]),
    "trade_state": st.sampled_from(["SUCCESS", "REFUND", "NOTPAY", "CLOSED", "PAYERROR", "success", "", "PAID"]),
    "transaction_id": st.sampled_from(["4200002026112300000000000002", "", "t" * 100, "t\x00"]),
    "success_time": st.sampled_from(["2026-11-20T10:03:04+08:00", "2026-11-20T10:03:04", "0001-01-01T00:00:00+08:00",
                                     "9999-12-31T23:59:59-08:00", "2026-11-20 10:03:04+08:00", "yesterday"]),
    "amount": st.fixed_dictionaries({}, optional={
        "total": st.sampled_from([WECHAT_FEN, 1, 0, -WECHAT_FEN, WECHAT_FEN + 1, 4990, 2**63, True, 100.0,
                                  float("nan"), "10000", None]),
        "currency": st.sampled_from(["CNY", "USD", "cny", "", None]),
        "payer_total": st.sampled_from([WECHAT_FEN, 1]),
        "payer_currency": st.sampled_from(["CNY", "USD"]),
    }),
}


@st.composite
def tx_change(draw: st.DrawFn) -> tuple[str, Any]:
    key = draw(st.sampled_from(sorted(TX_CHANGES) + ["attach", "payer", "trade_type", "promotion_detail", "x"]))
    return key, draw(st.just(DELETE) | TX_CHANGES.get(key, json_value) | json_value)


EVENT_CHANGES = {
    "id": st.sampled_from(["EV-2", "", "E" * 200, "EV\x00", "\ud800"]) | json_value,
    "event_type": st.sampled_from(["TRANSACTION.SUCCESS", "REFUND.SUCCESS", "REFUND.ABNORMAL",
                                   "TRANSACTION.FAIL", "transaction.success", ["TRANSACTION.SUCCESS"],
                                   {"a": 1}, None]) | json_value,
    "resource_type": json_value,
    "summary": json_value,
    "resource": st.sampled_from([None, [], "resource", {}, 1]),
}
event_change = st.sampled_from(sorted(EVENT_CHANGES)).flatmap(
    lambda key: st.tuples(st.just(key), st.just(DELETE) | EVENT_CHANGES[key]))
RESOURCE_DAMAGE = ["ciphertext flipped", "ciphertext truncated", "ciphertext not base64", "ciphertext empty",
                   "ciphertext number", "nonce changed", "nonce empty", "nonce number", "associated data changed",
                   "associated data missing", "algorithm other", "algorithm missing", "wrong APIv3 key"]
PLAINTEXTS = ["not json", "[]", "null", '"x"', "{", DEEP, '{"out_trade_no": "{wechat}"}']


@dataclass(frozen=True)
class WechatCase:
    target: str
    tx_changes: tuple[tuple[str, Any], ...]
    plaintext: str | None  # replaces the transaction JSON entirely
    damage: str | None
    event_changes: tuple[tuple[str, Any], ...]
    event_text: str | None  # replaces the whole signed body
    ensure_ascii: bool
    indent: int | None
    timestamp: int | str  # seconds from now, or the header text itself
    nonce: str
    serial: str
    signature_type: str | None
    signature: str  # "valid", "garbage", "missing", "other body", "body changed after"
    content_type: str | None


def mostly(usual: Any, others: list[Any] | st.SearchStrategy, odds: int = 4) -> st.SearchStrategy:
    """``usual`` about ``odds`` times in ``odds + 1``: most cases stay close to a valid callback."""
    if isinstance(others, list):
        return st.sampled_from([usual] * odds * len(others) + others)
    return st.sampled_from([True] * odds + [False]).flatmap(lambda keep: st.just(usual) if keep else others)


wechat_cases = st.builds(
    WechatCase,
    target=mostly("wechat", ["main"]),
    tx_changes=st.lists(tx_change(), max_size=3).map(tuple),
    plaintext=mostly(None, PLAINTEXTS),
    damage=mostly(None, RESOURCE_DAMAGE),
    event_changes=mostly((), st.lists(event_change, min_size=1, max_size=2).map(tuple), 2),
    event_text=mostly(None, ["[]", "null", "{", '"x"', DEEP, "{}"], 8),
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, None, 2]),
    timestamp=mostly(0, st.integers(-330, 330) | st.sampled_from(
        [-10**6, 10**12, 10**20, -10**20, "", "abc", "1e3", "nan", "-", "0x10"]), 1),
    nonce=mostly("5K8264ILTKCH16CQ2502SI8ZNMTM67VS", ["", " ", "n\x00", "长"]),
    serial=mostly(EMULATOR_WECHAT_PUBLIC_KEY_ID, ["PUB_KEY_ID_OTHER", "", EMULATOR_WECHAT_PUBLIC_KEY_ID.lower()]),
    signature_type=mostly("WECHATPAY2-SHA256-RSA2048", [None, "", "HMAC-SHA256"]),
    signature=mostly("valid", ["garbage", "missing", "other body", "body changed after"]),
    content_type=st.sampled_from(["application/json"] * 3 + ["application/json; charset=utf-8", None,
                                                             "text/plain", ALIPAY_FORM]),
)


@functools.cache
def platform_key() -> Any:
    return load_private_key(wechat_oracle.platform_private_pem())


@functools.lru_cache(maxsize=64)
def platform_signature(timestamp: str, nonce: str, body: str) -> str:
    """WeChat Pay's callback signature (deterministic: PKCS#1 v1.5 over SHA-256)."""
    return rsa_sign(platform_key(), f"{timestamp}\n{nonce}\n{body}\n")


def _damaged(resource: dict[str, Any], damage: str, plaintext: str) -> dict[str, Any]:
    raw = base64.b64decode(resource["ciphertext"])
    changes: dict[str, Any] = {
        "ciphertext flipped": {"ciphertext": base64.b64encode(bytes([raw[0] ^ 1]) + raw[1:]).decode()},
        "ciphertext truncated": {"ciphertext": base64.b64encode(raw[:-1]).decode()},
        "ciphertext not base64": {"ciphertext": resource["ciphertext"] + "!"},
        "ciphertext empty": {"ciphertext": ""},
        "ciphertext number": {"ciphertext": 12},
        "nonce changed": {"nonce": "000000000000"},
        "nonce empty": {"nonce": ""},
        "nonce number": {"nonce": 1},
        "associated data changed": {"associated_data": "refund"},
        "associated data missing": {"associated_data": DELETE},
        "algorithm other": {"algorithm": "AEAD_AES_128_GCM"},
        "algorithm missing": {"algorithm": DELETE},
        "wrong APIv3 key": wechat_oracle.encrypt(plaintext, "W" * 32),
    }[damage]
    damaged = {**resource, **changes}
    return {k: v for k, v in damaged.items() if v is not DELETE}


def _dumps(value: Any, ensure_ascii: bool, indent: int | None = None) -> str:
    text = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate travels escaped, as in any real JSON
        text = json.dumps(value, ensure_ascii=True, indent=indent)
    return text


def build_wechat(world: NotifyWorld, case: WechatCase, now: datetime) -> tuple[bytes, dict[str, str], Expected]:
    out_trade_no = world.trades[case.target]
    tx = wechat_oracle.transaction(out_trade_no, world.attempts[out_trade_no][1])
    for key, value in case.tx_changes:
        if value is DELETE:
            tx.pop(key, None)
        else:
            tx[key] = world.resolve(value) if isinstance(value, str) else value
    if case.plaintext is None:
        plaintext = _dumps(tx, case.ensure_ascii)
    else:
        plaintext = expand_deep(world.resolve(case.plaintext))
    resource: Any = wechat_oracle.encrypt(plaintext)
    if case.damage:
        resource = _damaged(resource, case.damage, plaintext)
    event: dict[str, Any] = {"id": "EV-2026112300000001", "create_time": "2026-11-20T10:03:05+08:00",
                             "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
                             "summary": "支付成功", "resource": resource}
    for key, value in case.event_changes:
        if value is DELETE:
            event.pop(key, None)
        else:
            event[key] = value
    if isinstance(event.get("id"), str):
        event["id"] = world.unique(event["id"])
    body = _dumps(event, case.ensure_ascii, case.indent) if case.event_text is None else expand_deep(case.event_text)
    at = int(now.replace(tzinfo=timezone.utc).timestamp())
    timestamp = str(at + case.timestamp) if isinstance(case.timestamp, int) else case.timestamp
    headers = {"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": case.nonce,
               "Wechatpay-Serial": case.serial}
    if case.signature_type is not None:
        headers["Wechatpay-Signature-Type"] = case.signature_type
    if case.content_type:
        headers["Content-Type"] = case.content_type
    signature = {
        "valid": lambda: platform_signature(timestamp, case.nonce, body),
        "garbage": lambda: "c2lnbmF0dXJl",
        "missing": lambda: None,
        "other body": lambda: platform_signature(timestamp, case.nonce, body + " "),
        "body changed after": lambda: platform_signature(timestamp, case.nonce, body),
    }[case.signature]()
    if signature is not None:
        headers["Wechatpay-Signature"] = signature
    if case.signature == "body changed after":
        body = body.replace("EV-", "EV+", 1) if "EV-" in body else body + "\n"
    expected = wechat_expectation(world, body, headers, now, case)
    return body.encode("utf-8"), headers, expected


def wechat_expectation(world: NotifyWorld, body: str, headers: dict[str, str], now: datetime,
                       case: WechatCase) -> Expected:
    """WeChat Pay API v3's rules for a payment callback (JSON, signature, ±5 minutes, AEAD, ids)."""
    if media_type(headers.get("Content-Type")) != "application/json":
        return refuse("not labelled as JSON")
    timestamp, nonce = headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"]
    signature = headers.get("Wechatpay-Signature")
    if not (timestamp and nonce and signature):
        return refuse("unsigned")
    if headers.get("Wechatpay-Signature-Type") not in (None, "", "WECHATPAY2-SHA256-RSA2048"):
        return refuse("another signature type")
    if headers["Wechatpay-Serial"] != EMULATOR_WECHAT_PUBLIC_KEY_ID:
        return refuse("another platform key")
    if signature != platform_signature(timestamp, nonce, body):
        return refuse("signature does not verify")
    if not re.fullmatch(r"-?[0-9]+", timestamp):
        return refuse("timestamp is not a number")
    if abs(int(timestamp) - now.replace(tzinfo=timezone.utc).timestamp()) > 300:
        return refuse("timestamp outside ±5 minutes")
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        return refuse("body is not JSON")
    if not isinstance(event, dict):
        return refuse("body is not an object")
    resource = event.get("resource")
    if not isinstance(resource, dict) or not isinstance(event.get("id"), str) or not event["id"]:
        return refuse("not an event")
    if event.get("event_type") != "TRANSACTION.SUCCESS":
        return refuse("not a payment event (and no refund exists)")
    if case.damage or resource.get("algorithm") != "AEAD_AES_256_GCM":
        return refuse("resource does not decrypt")
    plaintext = AESGCM(wechat_oracle.APIV3_KEY.encode()).decrypt(
        resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]), resource["associated_data"].encode())
    try:
        tx = json.loads(plaintext)
    except (ValueError, RecursionError):
        return refuse("resource is not JSON")
    if not isinstance(tx, dict):
        return refuse("resource is not an object")
    if tx.get("mchid") != EMULATOR_WECHAT_MCH_ID or tx.get("appid") != EMULATOR_WECHAT_APP_ID:
        return refuse("another merchant or app")
    out_trade_no = tx.get("out_trade_no")
    ours = isinstance(out_trade_no, str) and out_trade_no in world.attempts
    channel, amount_fen = world.attempts[out_trade_no] if ours else (None, None)
    if channel != "wechat":
        return refuse("not one of our WeChat attempts")
    if tx.get("trade_state") not in ("SUCCESS", "REFUND"):
        return refuse("not paid")
    amount = tx.get("amount") if isinstance(tx.get("amount"), dict) else {}
    total = amount.get("total")
    if type(total) is not int or total != amount_fen or amount.get("currency") != "CNY":
        return refuse("not the attempt's amount in CNY")
    if not isinstance(tx.get("transaction_id"), str) or not tx["transaction_id"]:
        return refuse("no transaction_id")
    expected = Expected("accept", out_trade_no, "signed, decrypted, ours, exact amount")
    if tx.get("success_time") != "2026-11-20T10:03:04+08:00":
        expected = loosen(expected, "odd success_time")
    if not (plausible_id(event["id"]) and plausible_id(tx["transaction_id"])):
        expected = loosen(expected, "odd event id or transaction_id")
    return expected


def post_wechat(client: FlaskClient, body: bytes, headers: dict[str, str]) -> tuple[Any, bool]:
    response = client.post("/notify/wechat", data=body, headers=headers)
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    if response.status_code in (200, 204):
        return response, True
    assert 400 <= response.status_code < 500, response.status_code
    assert response.is_json and response.json["code"] == "FAIL" and isinstance(response.json["message"], str)
    return response, False


@fuzz(100)
@given(body=st.binary(max_size=600) | json_value.map(lambda v: _dumps(v, False).encode()),
       header_names=st.sets(st.sampled_from(["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature",
                                              "Wechatpay-Serial", "Wechatpay-Signature-Type"])),
       header_value=st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40))
def test_wechat_notify_refuses_arbitrary_bodies_and_headers(notify_world, client, body, header_names, header_value):
    headers = {"Content-Type": "application/json", **{name: header_value for name in header_names}}
    before = money_state(notify_world.app)
    response, accepted = post_wechat(client, body, headers)
    check_notify(notify_world, before, response, refuse("unsigned garbage"), accepted)


@fuzz(200)
@given(case=wechat_cases)
def test_wechat_notify_pays_only_a_signed_decrypted_callback_for_the_exact_amount(notify_world, client, clock, case):
    body, headers, expected = build_wechat(notify_world, case, clock())
    before = money_state(notify_world.app)
    response, accepted = post_wechat(client, body, headers)
    check_notify(notify_world, before, response, expected, accepted)


# --- huge bodies -----------------------------------------------------------------------------

HUGE = 2 * 1024 * 1024


def _huge_alipay(world: NotifyWorld) -> bytes:
    fields = {**notification_fields(world.trades["main"], MAIN_FEN), "passback_params": "x" * HUGE}
    return encode_form(list(fields.items()) + [("sign", alipay_sign(fields)), ("sign_type", "RSA2")], "plus")


def chunked(body: bytes) -> dict[str, Any]:
    """Request arguments for a body sent without Content-Length (chunked transfer)."""
    return {"input_stream": io.BytesIO(body), "environ_overrides": {
        "wsgi.input_terminated": True, "CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}}


@pytest.mark.parametrize("kind", ["random bytes", "signed form", "signed form, chunked"])
def test_alipay_notify_refuses_a_two_megabyte_body(notify_world, client, kind):
    body = os.urandom(HUGE) if kind == "random bytes" else _huge_alipay(notify_world)
    before = money_state(notify_world.app)
    response = client.post("/notify/alipay", headers={"Content-Type": ALIPAY_FORM},
                           **(chunked(body) if kind.endswith("chunked") else {"data": body}))
    assert response.status_code == 200 and response.text in ("success", "failure"), response.status_code
    check_notify(notify_world, before, response, refuse("over the 64 KiB limit"), response.text == "success")


@pytest.mark.parametrize("kind", ["random bytes", "signed callback", "signed callback, chunked"])
def test_wechat_notify_refuses_a_two_megabyte_body(notify_world, client, clock, kind):
    if kind == "random bytes":
        body, headers = os.urandom(HUGE), {"Content-Type": "application/json"}
    else:
        paid = wechat_oracle.transaction(notify_world.trades["wechat"], WECHAT_FEN, attach="x" * HUGE)
        body, headers = wechat_oracle.callback(paid, at=clock(), event_id=notify_world.unique("EV-huge"))
    before = money_state(notify_world.app)
    response = client.post("/notify/wechat", headers=headers,
                           **(chunked(body) if kind.endswith("chunked") else {"data": body}))
    assert response.status_code < 500, response.status_code
    check_notify(notify_world, before, response, refuse("over the 64 KiB limit"), response.status_code in (200, 204))


# --- the JSON API v1 -------------------------------------------------------------------------


@dataclass
class ApiWorld:
    """Published courses ``a`` (¥100.00), ``b`` (¥49.90) and ``c`` (¥25.00), unpublished
    ``hidden``; coupon TEN; Bob's pending order ``bob``; the API client (``token``) has a
    pending order ``own`` for ``c``. `renew` swaps in a new client once an order was placed."""

    app: Flask = field(repr=False)
    courses: dict[str, int] = field(default_factory=dict)
    orders: dict[str, str] = field(default_factory=dict)
    token: str = field(default="", repr=False)
    generation: int = 0

    def build(self) -> ApiWorld:
        with self.app.app_context():
            self.courses = {name: make_course(fen, slug=name)
                            for name, fen in (("a", 10000), ("b", 4990), ("c", 2500), ("hidden", 3000))}
            db.session.get(Course, self.courses["hidden"]).is_published = False
            make_coupon("TEN")
            self.orders["bob"] = self._pending_order(quick_learner("bob@example.com"), "c")
            db.session.commit()
        self.renew()
        return self

    def renew(self) -> None:
        self.generation += 1
        next_second(self.app)
        with self.app.app_context():
            client_id = quick_learner(f"client{self.generation}@example.com")
            self.token = create_token(client_id, "fuzz")
            self.orders["own"] = self._pending_order(client_id, "c")
            db.session.commit()

    def _pending_order(self, user_id: int, course: str) -> str:
        order_id = place_order(OrderRequest(user_id, (self.courses[course],), None, "alipay"))
        return db.session.get(Order, order_id).order_no

    def order_count(self) -> int:
        with self.app.app_context():
            return db.session.scalar(select(func.count(Order.id)))


@pytest.fixture
def api_world(app: Flask) -> ApiWorld:
    return ApiWorld(app).build()


@dataclass(frozen=True)
class CourseRef:
    name: str


def resolve_refs(value: Any, world: ApiWorld) -> Any:
    if isinstance(value, CourseRef):
        return world.courses[value.name]
    if isinstance(value, list):
        return [resolve_refs(item, world) for item in value]
    if isinstance(value, dict):
        return {key: resolve_refs(item, world) for key, item in value.items()}
    return value


course_id_like = st.one_of(
    st.sampled_from([CourseRef("a"), CourseRef("b"), CourseRef("c"), CourseRef("hidden")]),
    st.integers(-2**70, 2**70),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, -2**63 - 1, True, False, 1.0, 1.5,
                     float("nan"), float("inf"), "1", "", None, [1], {"id": 1}]),
)
course_ids = st.one_of(
    st.lists(course_id_like, max_size=5),
    st.lists(st.sampled_from([CourseRef("a"), CourseRef("b")]), min_size=1, max_size=3),
    st.sampled_from(["many copies", "many ids"]),
    json_value,
)
coupon = st.sampled_from([None, "", "TEN", " ten ", "NOPE", "X" * 41, "T" * 40, "\x00", "TEN\x00",
                          "\ud800", "ﬃ" * 15, 5, ["TEN"]]) | nasty_text
channel = st.sampled_from(["alipay", "wechat", "ALIPAY", "paypal", "", "\x00", None, 1]) | nasty_text
order_body = st.fixed_dictionaries({}, optional={
    "course_ids": course_ids, "coupon": coupon, "channel": channel,
    "extra": json_value, "course_id": course_id_like, "amount_fen": st.integers(),
})
near_valid_body = st.fixed_dictionaries(
    {"course_ids": st.lists(st.sampled_from([CourseRef("a"), CourseRef("b")]), min_size=1, max_size=3)},
    optional={"coupon": st.sampled_from([None, "", "TEN", " ten ", "NOPE"]), "channel": st.sampled_from(
        ["alipay", "wechat", "paypal"]), "client_note": json_value})
request_body = st.one_of(
    near_valid_body.map(lambda body: ("json", body)),
    near_valid_body.map(lambda body: ("json", body)),
    order_body.map(lambda body: ("json", body)),
    json_value.map(lambda value: ("json", value)),
    st.binary(max_size=200).map(lambda raw: ("raw", raw)),
    st.sampled_from([("raw", DEEP.encode()), ("raw", b'{"course_ids": ' + DEEP.encode() + b"}"),
                     ("raw", b'{"course_ids": [1,]}'), ("raw", b"\xef\xbb\xbf{}"), ("raw", b"NaN")]),
)
API_CONTENT_TYPES = ["application/json"] * 8 + ["application/json; charset=utf-8", "application/merge-patch+json",
                                                "text/plain", None, ALIPAY_FORM, "multipart/form-data; boundary=x"]
latin1_text = st.text(st.characters(min_codepoint=0, max_codepoint=255, blacklist_characters="\r\n"), max_size=30)
# Mostly the right token, so most requests reach the body checks.
authorization = st.one_of(st.just("valid"), st.just("valid"), st.just("valid"), st.sampled_from(
    ["lower scheme", "two spaces", "no scheme", "Token scheme", "truncated", "extended", "absent", "empty bearer"]),
    latin1_text)
idempotency_key = st.sampled_from([None, None, "order-1", "", " ", "k" * 100, "k" * 101, "é", "\x7f", "\t",
                                   "a\x00b", "ü" * 100]) | latin1_text


def authorization_header(choice: str, token: str) -> tuple[str | None, str]:
    """The header value, and whether it must authenticate ("yes"), must not ("no") or
    may go either way ("maybe": unusual spacing and case in the scheme)."""
    known = {
        "valid": (f"Bearer {token}", "yes"), "lower scheme": (f"bearer {token}", "maybe"),
        "two spaces": (f"Bearer  {token}", "maybe"), "no scheme": (token, "no"),
        "Token scheme": (f"Token {token}", "no"), "truncated": (f"Bearer {token[:-1]}", "no"),
        "extended": (f"Bearer {token}x", "no"), "absent": (None, "no"), "empty bearer": ("Bearer ", "no"),
    }
    return known.get(choice, (choice, "no"))


def body_bytes(kind: str, value: Any, world: ApiWorld) -> bytes:
    if kind == "raw":
        return expand_deep(value.decode("latin-1")).encode("latin-1")
    value = resolve_refs(value, world)
    if isinstance(value, dict) and value.get("course_ids") == "many copies":
        value = {**value, "course_ids": [world.courses["a"]] * 10_000}
    elif isinstance(value, dict) and value.get("course_ids") == "many ids":
        value = {**value, "course_ids": list(range(1, 10_001))}
    return _dumps(value, ensure_ascii=False).encode("utf-8")


def order_request_verdict(body: bytes, content_type: str | None, key: str | None, world: ApiWorld) -> str:
    """"valid": must create (or return) an order; "maybe": may; "invalid": must not."""
    verdict = _order_fields_verdict(body, world)
    if key is not None and not (0 < len(key) <= 100 and key.isprintable()):
        return "invalid"
    if content_type is None or content_type.split(";")[0] not in ("application/json", "application/merge-patch+json"):
        return "maybe" if verdict != "invalid" else "invalid"
    return verdict


def _order_fields_verdict(body: bytes, world: ApiWorld) -> str:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return "invalid"
    if not isinstance(parsed, dict):
        return "invalid"
    ids = parsed.get("course_ids")
    sellable = {world.courses["a"], world.courses["b"], world.courses["c"]}
    if not (isinstance(ids, list) and ids and all(type(i) is int and i in sellable for i in ids)):
        return "invalid"
    if parsed.get("coupon") not in (None, "", "TEN", " ten ") or parsed.get("channel", "alipay") not in (
            "alipay", "wechat"):
        return "invalid"
    # c is in the client's waiting order: that order comes back, or the overlap is refused.
    return "maybe" if world.courses["c"] in ids else "valid"


def check_api_error(response: Any, status: int | None = None, codes: tuple[str, ...] = ()) -> None:
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data()[:300])
    if status is not None:
        assert response.status_code == status, (response.status_code, response.get_data()[:300])
    assert response.is_json, response.get_data()[:300]
    assert isinstance(response.json.get("code"), str) and response.json["code"]
    assert isinstance(response.json.get("message"), str) and response.json["message"]
    if codes:
        assert response.json["code"] in codes, response.json


def assert_nothing_paid(app: Flask) -> None:
    state = money_state(app)
    assert (state.succeeded, state.paid_orders, state.entries, state.enrollments) == (frozenset(), 0, 0, 0)


@fuzz(250)
@given(body=request_body, content_type=st.sampled_from(API_CONTENT_TYPES), auth=authorization,
       key=idempotency_key)
def test_api_create_order_answers_201_to_a_valid_order_and_json_4xx_to_the_rest(api_world, client, body,
                                                                                content_type, auth, key):
    raw = body_bytes(*body, api_world)
    auth_value, authenticates = authorization_header(auth, api_world.token)
    headers = {name: value for name, value in (("Authorization", auth_value), ("Idempotency-Key", key),
                                                ("Content-Type", content_type)) if value is not None}
    before = api_world.order_count()
    response = client.post("/api/v1/orders", data=raw, headers=headers)
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    verdict = order_request_verdict(raw, content_type, key, api_world)
    if authenticates == "no":
        check_api_error(response, 401, ("unauthorized",))
    elif authenticates == "yes" and verdict == "valid":
        assert response.status_code == 201, response.get_data()[:300]
    if response.status_code == 201:
        assert verdict != "invalid" and authenticates != "no"
        requested = set(json.loads(raw)["course_ids"])
        assert response.json["status"] == "pending" and response.json["total_fen"] > 0
        assert {line["course_id"] for line in response.json["lines"]} == requested
    else:
        check_api_error(response)
        assert api_world.order_count() == before
    assert_nothing_paid(api_world.app)
    if response.status_code == 201:
        api_world.renew()


order_no_like = st.sampled_from(["{own}", "{bob}", "{own}x", "{own}\x00", "CC0000", "", " ", "..", "%", "\x00",
                                 "C" * 5000, "订单", "{own}/status"]) | st.text(max_size=40)


@fuzz(120)
@given(order_no=order_no_like, auth=authorization, method=st.sampled_from(["GET"] * 6 + ["POST", "PUT", "DELETE",
                                                                                        "PATCH"]))
def test_api_get_order_answers_json_for_any_order_number(api_world, client, order_no, auth, method):
    order_no = order_no.replace("{own}", api_world.orders["own"]).replace("{bob}", api_world.orders["bob"])
    auth_value, authenticates = authorization_header(auth, api_world.token)
    headers = {"Authorization": auth_value} if auth_value is not None else {}
    response = client.open(f"/api/v1/orders/{quote(order_no, safe='')}", method=method, headers=headers)
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    if order_no in ("", ".", "..") or "/" in order_no:  # not an order URL at all
        check_api_error(response)
    elif method != "GET":
        check_api_error(response, 405)
    elif authenticates == "no":
        check_api_error(response, 401, ("unauthorized",))
    elif order_no == api_world.orders["own"] and authenticates == "yes":
        assert response.status_code == 200 and response.json["order_no"] == order_no
    elif authenticates == "yes":
        check_api_error(response, 404, ("order_not_found",))
    assert_nothing_paid(api_world.app)


@fuzz(40)
@given(query=st.dictionaries(latin1_text, latin1_text, max_size=3), auth=authorization,
       method=st.sampled_from(["GET", "GET", "POST", "PUT", "DELETE"]))
def test_api_courses_lists_the_catalogue_whatever_else_is_sent(api_world, client, query, auth, method):
    auth_value, _ = authorization_header(auth, api_world.token)
    headers = {"Authorization": auth_value} if auth_value is not None else {}
    response = client.open("/api/v1/courses", method=method, query_string=query, headers=headers)
    if method == "GET":
        assert response.status_code == 200
        assert {course["id"] for course in response.json["courses"]} == {
            api_world.courses[name] for name in ("a", "b", "c")}
    else:
        check_api_error(response, 405)


# --- the smallest failing inputs the fuzzing found, one per cause ---------------------------
# Each names its cause; they fail until the cause is fixed, and keep it fixed afterwards.

SIGNED_ALIPAY = [
    pytest.param(("gmt_payment", "0001-01-01 00:00:00"), id="payment time before year 1 in UTC"),
    pytest.param(("notify_id", "n" * 200), id="notify_id longer than the dedupe key column"),
    pytest.param(("notify_id", "n\x00"), id="NUL in notify_id"),
    pytest.param(("trade_no", "t" * 100), id="trade_no longer than its column"),
    pytest.param(("out_trade_no", "{main}\x00"), id="NUL in an unknown out_trade_no"),
]


@pytest.mark.parametrize("change", SIGNED_ALIPAY)
def test_signed_alipay_notification_with_an_odd_field_gets_a_channel_answer(notify_world, client, change):
    case = AlipayCase("main", (change,), "valid", (), "plus", 0, (), ALIPAY_FORM)
    body, expected = build_alipay(notify_world, case)
    before = money_state(notify_world.app)
    response, accepted = post_alipay(client, body, ALIPAY_FORM)
    check_notify(notify_world, before, response, expected, accepted)


def _signed_wechat(tx: tuple = (), event: tuple = (), plaintext: str | None = None,
                   event_text: str | None = None) -> WechatCase:
    return WechatCase(target="wechat", tx_changes=tx, plaintext=plaintext, damage=None, event_changes=event,
                      event_text=event_text, ensure_ascii=False, indent=None, timestamp=0, nonce="nonce",
                      serial=EMULATOR_WECHAT_PUBLIC_KEY_ID, signature_type="WECHATPAY2-SHA256-RSA2048",
                      signature="valid", content_type="application/json")


SIGNED_WECHAT = [
    pytest.param(_signed_wechat(event=(("event_type", ["TRANSACTION.SUCCESS"]),)), id="event_type is a list"),
    pytest.param(_signed_wechat(event_text=DEEP), id="body nested 5000 deep"),
    pytest.param(_signed_wechat(plaintext=DEEP), id="resource nested 5000 deep"),
    pytest.param(_signed_wechat(tx=(("success_time", "0001-01-01T00:00:00+08:00"),)),
                 id="success_time before year 1 in UTC"),
    pytest.param(_signed_wechat(tx=(("success_time", "9999-12-31T23:59:59-08:00"),)),
                 id="success_time after 9999 in UTC"),
    pytest.param(_signed_wechat(tx=(("out_trade_no", "{wechat}\ud800"),)), id="lone surrogate in out_trade_no"),
    pytest.param(_signed_wechat(event=(("id", "\ud800"),)), id="lone surrogate in the event id"),
    pytest.param(_signed_wechat(event=(("id", "E" * 200),)), id="event id longer than the dedupe key column"),
    pytest.param(_signed_wechat(tx=(("transaction_id", "t" * 100),)), id="transaction_id longer than its column"),
    pytest.param(_signed_wechat(tx=(("out_trade_no", "{wechat}\x00"),)), id="NUL in an unknown out_trade_no"),
]


@pytest.mark.parametrize("case", SIGNED_WECHAT)
def test_signed_wechat_callback_with_an_odd_field_gets_a_channel_answer(notify_world, client, clock, case):
    body, headers, expected = build_wechat(notify_world, case, clock())
    before = money_state(notify_world.app)
    response, accepted = post_wechat(client, body, headers)
    check_notify(notify_world, before, response, expected, accepted)


API_BAD_BODIES = [
    pytest.param(DEEP, id="JSON nested 5000 deep"),
    pytest.param({"course_ids": [2**31]}, id="course id above 32 bits"),
    pytest.param({"course_ids": [CourseRef("a"), 2**63]}, id="course id above 64 bits"),
    pytest.param({"course_ids": [CourseRef("a")], "coupon": "\ud800"}, id="lone surrogate in the coupon"),
    pytest.param({"course_ids": [CourseRef("a")], "coupon": "TEN\x00"}, id="NUL in the coupon"),
]


@pytest.mark.parametrize("body", API_BAD_BODIES)
def test_api_create_order_refuses_an_odd_body_with_a_json_4xx(api_world, client, body):
    raw = body_bytes("raw", body.encode(), api_world) if isinstance(body, str) else body_bytes("json", body, api_world)
    before = api_world.order_count()
    response = client.post("/api/v1/orders", data=raw, headers={"Authorization": f"Bearer {api_world.token}",
                                                                "Content-Type": "application/json"})
    check_api_error(response)
    assert api_world.order_count() == before
    assert_nothing_paid(api_world.app)


@pytest.mark.parametrize("order_no", ["\x00", "CC\x00"], ids=["NUL", "NUL after a prefix"])
def test_api_get_order_with_a_nul_in_the_number_is_404(api_world, client, order_no):
    response = client.get(f"/api/v1/orders/{quote(order_no)}", headers={"Authorization": f"Bearer {api_world.token}"})
    check_api_error(response, 404, ("order_not_found",))
