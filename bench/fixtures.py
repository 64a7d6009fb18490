"""What the hot-path measurements need in the database before they start, made in the
bench process with the site's own services (the same code the site runs), not over HTTP:
learners with API tokens, pending orders to pay, and the channels' signed callbacks
for them, ready to replay.
"""
from __future__ import annotations

import html
import itertools
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode

import requests
from flask import Flask
from sqlalchemy import func, select

from app.accounts.services import create_token, create_user
from app.catalog.models import Course, Instructor
from app.checkout.models import Order
from app.checkout.services import OrderRequest, place_order
from app.config import EMULATOR_WECHAT_APP_ID, EMULATOR_WECHAT_MCH_ID
from app.earnings.rules import add_rule
from app.extensions import db
from app.gateway import alipay_notify, wechat_notify
from app.gateway.identity import alipay_identity
from app.gateway.models import GatewayAlipayTrade, GatewayNotification
from app.gateway.wechat_models import GatewayWechatTrade
from app.payments.models import PaymentAttempt
from app.timeutil import now

PASSWORD = "bench-password-0123"
RECORD_SEPARATOR = "\x1e"


@dataclass(frozen=True)
class Learner:
    email: str
    user_id: int
    token: str


def make_learners(app: Flask, count: int, label: str) -> list[Learner]:
    learners = []
    with app.app_context():
        for number in range(count):
            email = f"load-{label}-{number}-{uuid.uuid4().hex[:6]}@load.invalid"
            user_id = create_user(email, PASSWORD, f"Bench {label} {number}")
            learners.append(Learner(email, user_id, create_token(user_id, "bench")))
        db.session.commit()
    return learners


def course_ids(app: Flask, at_least: int) -> list[int]:
    """Every course on sale, cheapest first (a fixed order keeps runs alike), after adding
    bench courses when the catalog has fewer than ``at_least``: each learner buys each
    course once, so the courses bound how many orders a learner can place."""
    with app.app_context():
        present = db.session.scalar(select(func.count(Course.id)).where(Course.is_published.is_(True)))
        if present < at_least:
            instructor = Instructor(name="Bench Instructor")
            db.session.add(instructor)
            db.session.flush()
            add_rule(7000, None, None, "bench catalog", instructor_id=instructor.id)
            for number in range(at_least - present):
                db.session.add(Course(
                    slug=f"load-course-{uuid.uuid4().hex[:10]}", instructor=instructor,
                    title_zh=f"基准课程 {number}", title_en=f"Bench course {number}",
                    price_fen=9900 + 100 * (number % 50),
                ))
            db.session.commit()
        return list(db.session.scalars(
            select(Course.id).where(Course.is_published.is_(True)).order_by(Course.price_fen, Course.id)
        ))


def login(site_url: str, email: str) -> requests.Session:
    """A browser session signed in through the login form."""
    session = requests.Session()
    page = session.get(f"{site_url}/login", timeout=10)
    token = html.unescape(re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1))
    answer = session.post(
        f"{site_url}/login", data={"csrf_token": token, "email": email, "password": PASSWORD},
        allow_redirects=False, timeout=10,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"login of {email} failed: {answer.status_code}")
    return session


@dataclass(frozen=True)
class PendingPayment:
    order_no: str
    out_trade_no: str
    amount_fen: int
    subject: str


def pending_payments(app: Flask, learners: list[Learner], courses: list[int], channel: str,
                     count: int) -> list[PendingPayment]:
    """``count`` pending one-course orders on ``channel``, placed by the checkout service
    (no precreate: these are paid by replayed callbacks, never scanned). Each (learner,
    course) pair is used once: pass learners no other call has used with these courses."""
    pairs = itertools.product(courses, learners)
    made: list[PendingPayment] = []
    seen: set[str] = set()
    with app.app_context():
        for course_id, learner in itertools.islice(pairs, count):
            order_id = place_order(OrderRequest(user_id=learner.user_id, course_ids=(course_id,),
                                                coupon_code=None, channel=channel))
            order = db.session.get(Order, order_id)
            attempt = db.session.scalar(select(PaymentAttempt).where(PaymentAttempt.order_id == order_id))
            if attempt.channel != channel or attempt.out_trade_no in seen:
                # place_order hands back a learner's waiting order for the same course.
                raise RuntimeError(f"{learner.email} already had an order for course {course_id}")
            seen.add(attempt.out_trade_no)
            made.append(PendingPayment(order.order_no, attempt.out_trade_no, attempt.amount_fen,
                                       f"Course {course_id}"))
            if len(made) % 500 == 0:
                db.session.commit()
        db.session.commit()
    if len(made) < count:
        raise RuntimeError(f"only {len(made)} pending {channel} orders could be placed")
    return made


def _record(headers: dict[str, str], body: str) -> str:
    head = "\n".join(f"{name}: {value}" for name, value in headers.items())
    return f"{head}\n\n{body}"


def alipay_callbacks(app: Flask, payments: list[PendingPayment], notify_url: str) -> Iterator[str]:
    """TRADE_SUCCESS notifications as the channel signs them (the emulator's own code)."""
    with app.app_context():
        identity = alipay_identity()
        moment = now()
        for number, payment in enumerate(payments):
            trade = GatewayAlipayTrade(
                app_id=identity.app_id, out_trade_no=payment.out_trade_no,
                total_amount_fen=payment.amount_fen, trade_no=f"2026{number:024d}",
                subject=payment.subject, buyer_logon_id="bench***@example.com",
                opened_at=moment - timedelta(seconds=30), paid_at=moment - timedelta(seconds=5),
                notify_url=notify_url,
            )
            form = alipay_notify.notification_form(trade, secrets.token_hex(16), moment)
            yield _record({"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                          urlencode(form))


def wechat_callbacks(app: Flask, payments: list[PendingPayment], notify_url: str) -> Iterator[str]:
    """TRANSACTION.SUCCESS events, encrypted and signed as the channel does (the
    emulator's own code). Their timestamps are now: WeChat's are good for five minutes."""
    with app.app_context():
        moment = now()
        for number, payment in enumerate(payments):
            trade = GatewayWechatTrade(
                app_id=EMULATOR_WECHAT_APP_ID, mch_id=EMULATOR_WECHAT_MCH_ID,
                out_trade_no=payment.out_trade_no, total_fen=payment.amount_fen,
                status="SUCCESS", transaction_id=f"4200{number:024d}",
                paid_at=moment - timedelta(seconds=5), payer_openid="o-bench-payer",
                notify_url=notify_url,
            )
            notification = GatewayNotification(
                channel="wechat", notify_id=str(uuid.uuid4()), notify_url=notify_url,
                created_at=moment, wechat_trade=trade,
            )
            outgoing = wechat_notify.build_request(notification, moment)
            yield _record(outgoing.headers, outgoing.body.decode("utf-8"))


def write_records(path: Path, records: Iterator[str]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as file:
        for record in records:
            file.write(record + RECORD_SEPARATOR)
            count += 1
    return count
