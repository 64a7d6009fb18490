"""WeChat Pay end to end against a live server, and a learner who switches from Alipay
to WeChat Pay mid-checkout: the Alipay QR ends closed at the emulator, the order is
paid once."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import requests
import sqlalchemy as sa

from tests.e2e.test_live_purchase import (
    TIMEOUT,
    assert_courses_are_mine,
    buy_two_courses,
    pay_with_phone,
    post_form,
    qr_url_of,
    wait_until_paid,
)

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveSite


def database_rows(site: LiveSite, sql: str, **params: str) -> list[tuple]:
    engine = sa.create_engine(site.env["DATABASE_URL"])
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def attempts_of(site: LiveSite, order_no: str) -> list[tuple]:
    return database_rows(
        site,
        "SELECT a.channel, a.status, a.out_trade_no FROM payment_attempts a"
        " JOIN orders o ON o.id = a.order_id WHERE o.order_no = :order_no ORDER BY a.id",
        order_no=order_no,
    )


@pytest.mark.parametrize("live_site", ["inline", "rq"], indirect=True)
def test_a_learner_pays_with_wechat_pay(live_site: LiveSite) -> None:
    with requests.Session() as browser:
        purchase = buy_two_courses(live_site, browser, channel="wechat")
        pay_with_phone(live_site, browser, purchase, channel="wechat")
        wait_until_paid(live_site, browser, purchase.order_no)
        assert_courses_are_mine(live_site, browser, purchase)
    assert [row[:2] for row in attempts_of(live_site, purchase.order_no)] == [
        ("wechat", "succeeded")
    ]


@pytest.mark.parametrize("live_site", ["inline"], indirect=True)
def test_switching_from_alipay_to_wechat_closes_the_alipay_qr(live_site: LiveSite) -> None:
    with requests.Session() as browser, requests.Session() as phone:
        purchase = buy_two_courses(live_site, browser, channel="alipay")
        pay_page = browser.get(live_site.url(f"/orders/{purchase.order_no}/pay"), timeout=TIMEOUT)
        alipay_qr = qr_url_of(pay_page)
        assert "/gateway/alipay/qr/" in alipay_qr
        assert phone.get(alipay_qr, timeout=TIMEOUT).status_code == 200  # scanned, not paid

        switched = post_form(browser, pay_page, f"/orders/{purchase.order_no}/channel", channel="wechat")
        assert switched.status_code == 302, switched.text
        pay_with_phone(live_site, browser, purchase, channel="wechat")
        wait_until_paid(live_site, browser, purchase.order_no)

        # The Alipay QR the phone still shows can no longer take money.
        alipay_page = phone.get(alipay_qr, timeout=TIMEOUT)
        assert alipay_page.status_code == 200
        assert "/confirm" not in alipay_page.text
        refused = phone.post(alipay_qr + "/confirm", timeout=TIMEOUT)
        assert refused.status_code in (400, 409)

    attempts = attempts_of(live_site, purchase.order_no)
    assert [row[:2] for row in attempts] == [("alipay", "closed"), ("wechat", "succeeded")]
    assert database_rows(
        live_site, "SELECT status FROM gateway_alipay_trades WHERE out_trade_no = :no",
        no=attempts[0][2],
    ) == [("TRADE_CLOSED",)]
    payments = database_rows(
        live_site,
        "SELECT count(*) FROM journal_entries e JOIN orders o ON o.id = e.order_id"
        " WHERE o.order_no = :order_no AND e.kind = 'payment'",
        order_no=purchase.order_no,
    )
    assert payments == [(1,)]
