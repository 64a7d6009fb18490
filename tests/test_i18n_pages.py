"""Every learner, instructor and emulator page, rendered in Chinese, shows no English of
ours, and rendered in English, no Chinese of ours: a string someone forgot to mark (or
to translate) fails here, naming the page and the words.

What may stay is data, not text: e-mail addresses, order and trade numbers, amounts,
the instructor's and bank's names as entered, and a few names that are the same in both
languages (the product's, the file formats').
"""
from __future__ import annotations

import html
import re
from typing import Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from app.accounts.models import ApiToken, User
from app.cart.models import Coupon
from app.catalog.models import Course, Instructor
from app.extensions import db
from app.gateway.models import GatewayAlipayTrade, GatewayFault

from tests.conftest import Clock
from tests.test_route_matrix import CLOSED_PERIOD, World, build_world

PAGES = {
    "anonymous": ["/", "/courses/{slug}", "/login", "/register", "/no-such-page",
                  "/gateway/alipay/qr/{alipay_qr}", "/gateway/wechat/qr/{wechat_qr}", "/gateway/",
                  "/receipts/verify"],
    "learner": ["/", "/courses/{slug}", "/courses/{slug}/lessons/1", "/my/courses", "/cart/", "/orders",
                "/orders/{pending}/pay", "/orders/{paid}/refund", "/account", "/earnings/",
                "/receipts/{receipt}"],
    "instructor": ["/earnings/", f"/earnings/statements/{CLOSED_PERIOD}", "/earnings/bank-account"],
}
# Words that are the same on a Chinese page: names of things, not sentences.
SAME_IN_BOTH = {"CourseCashier", "CSV", "PDF", "QR", "API", "CNY", "ID", "Alipay", "WeChat", "Pay", "HH", "mm",
                "JSON", "PEM", "RSA", "PKCS", "SHA", "base"}
# Data in whatever script it was entered in: e-mail addresses (a receipt's masked ones too:
# a***@example.com), order and trade numbers.
DATA = re.compile(r"[\w.+*-]+@[\w-]+(\.[\w-]+)+|\b[A-Z]{2}\d{6,}\w*|\b\d{6,}\b")
# A receipt's signed text, hash, signature and key id (app/receipts) are data, as signed.
SIGNED_DATA = re.compile(r'<(pre|code) id="(?:receipt-json|receipt-signature|receipt-sha256|key-id)">.*?</\1>', re.S)
HIDDEN = re.compile(r"<(script|style|svg)\b.*?</\1>|<!--.*?-->", re.S)
SHOWN_ATTRIBUTES = re.compile(r'\b(?:alt|title|placeholder|aria-label)="([^"]*)"')
TAG = re.compile(r"<[^>]+>")
ENGLISH_WORD = re.compile(r"[A-Za-z][A-Za-z']+")
CHINESE = re.compile(r"[\u3400-\u9fff]+")


def shown_text(page: str) -> str:
    """What a reader sees or hears: text between tags and the spoken attributes."""
    page = SIGNED_DATA.sub(" ", HIDDEN.sub(" ", page))
    spoken = " ".join(SHOWN_ATTRIBUTES.findall(page))
    buttons = " ".join(re.findall(r'<input[^>]*type="submit"[^>]*value="([^"]*)"', page))
    return html.unescape(" ".join((TAG.sub(" ", page), spoken, buttons)))


def language_switch_removed(page: str) -> str:
    """The switch names each language in itself (中文, English) on every page."""
    return re.sub(r'<form class="inline language".*?</form>', " ", page, flags=re.S)


@pytest.fixture(params=sorted(PAGES))
def visitor_world(request, app: Flask, clock: Clock) -> Iterator[World]:
    yield build_world(app, clock, request.param)


def pages_of(world: World) -> Iterator[tuple[str, str, str]]:
    """(URL, language, HTML) of each of the visitor's PAGES in Chinese and in English."""
    for template in PAGES[world.visitor]:
        url = world.url(template)
        for language in ("zh-CN", "en"):
            response = world.client.get(url, headers={"Accept-Language": language})
            assert response.status_code in (200, 403, 404), (url, response.status_code)
            yield url, language, response.text


def entered_data(app: Flask) -> list[str]:
    """What people and the channel typed rather than what we wrote: names, titles in
    either language (a statement keeps the title a line was sold under), token names,
    coupon codes, the order subject the channel shows; longest first."""
    with app.app_context():
        values = [
            *db.session.scalars(select(Course.title_zh)), *db.session.scalars(select(Course.title_en)),
            *db.session.scalars(select(User.display_name)), *db.session.scalars(select(Instructor.name)),
            *db.session.scalars(select(ApiToken.name)), *db.session.scalars(select(ApiToken.prefix)),
            *db.session.scalars(select(Coupon.code)),
            *db.session.scalars(select(GatewayAlipayTrade.subject)),
            *db.session.scalars(select(GatewayFault.out_trade_no)),
        ]
    return sorted({value for value in values if value}, key=len, reverse=True)


def test_no_page_shows_text_of_the_other_language(visitor_world: World):
    data = entered_data(visitor_world.app)
    left = []
    for url, language, page in pages_of(visitor_world):
        text = shown_text(language_switch_removed(page))
        for value in data:
            text = text.replace(value, " ")
        text = DATA.sub(" ", text)
        if language == "zh-CN":
            words = sorted({word for word in ENGLISH_WORD.findall(text) if word not in SAME_IN_BOTH})
        else:
            words = sorted(set(CHINESE.findall(text)))
        if words:
            left.append(f"{url} [{language}]: {' '.join(words)}")
    assert left == []
