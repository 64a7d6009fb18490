"""Journey 2: the purchase with WeChat Pay, and with a switch of channel half-way: the
learner's phone has opened the Alipay QR code when the learner chooses WeChat Pay
instead; the new QR code is paid, the old one can no longer take money."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.browsing import Journey
from tests.browser.steps import (
    buy_two_courses,
    confirm_on_phone,
    pay_with_phone,
    read_qr_code,
    remember_document,
    scan_with_phone,
    study,
    watch_flip_to_paid,
)


def test_a_learner_pays_with_wechat_pay(journey: Journey) -> None:
    learner = journey.desktop("learner")
    purchase = buy_two_courses(journey, learner, channel="wechat")
    pay_with_phone(journey, learner, purchase, channel="wechat")
    study(journey, learner, purchase)


def test_a_learner_switches_from_alipay_to_wechat_pay_half_way(journey: Journey) -> None:
    learner = journey.desktop("learner")
    purchase = buy_two_courses(journey, learner, channel="alipay")
    alipay_url = read_qr_code(journey, learner, purchase, "alipay")
    phone = journey.phone()
    scan_with_phone(journey, phone, alipay_url, purchase, "alipay")  # scanned, not paid

    learner.locator("button[data-switch=wechat]").click()
    expect(learner.locator("#channel")).to_have_attribute("data-channel", "wechat")
    wechat_url = read_qr_code(journey, learner, purchase, "wechat")
    assert wechat_url != alipay_url
    remember_document(learner)
    scan_with_phone(journey, phone, wechat_url, purchase, "wechat")
    confirm_on_phone(journey, phone, "wechat")
    watch_flip_to_paid(journey, learner)

    # The Alipay page the phone opened first was closed by the switch: no way to pay it.
    phone.goto(alipay_url)
    expect(phone.locator(".pay-state-closed")).to_be_visible()
    expect(phone.locator("form[action$='/confirm']")).to_have_count(0)
    journey.shot(phone, "phone-alipay-closed")
    study(journey, learner, purchase)
