"""Journey 1: a learner browses, adds two courses, applies a coupon, checks out, and pays
by scanning the pay page's QR code with a phone; the desktop page flips to "paid" by
itself, and the learner studies."""
from __future__ import annotations

from tests.browser.browsing import Journey
from tests.browser.steps import buy_two_courses, pay_with_phone, study


def test_a_learner_buys_two_courses_by_scanning_the_qr_code_and_studies(journey: Journey) -> None:
    learner = journey.desktop("learner")
    purchase = buy_two_courses(journey, learner, channel="alipay")
    pay_with_phone(journey, learner, purchase, channel="alipay")
    study(journey, learner, purchase)
