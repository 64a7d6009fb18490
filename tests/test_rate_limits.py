"""Rate limits (app/security/ratelimits.py) answer 429 with Retry-After at their
thresholds, lowered here to a few requests; and wrong passwords lock an account.

The limits count in memory in these tests, except where a test says Redis: there two
apps stand for two workers counting in one real Redis, and a Redis nobody listens on
stands for an outage.
"""
from __future__ import annotations

import re
import uuid
from typing import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import create_app
from app.accounts.services import LOGIN_MAX_FAILURES, create_token, find_user
from app.config import ConfigError, load_config
from app.extensions import db
from app.payments.models import PaymentAttempt
from app.security import ratelimits
from tests.conftest import Clock, base_config, reset_database
from tests.helpers import checkout, login, make_coupon, make_course, make_learner

REDIS_URL = "redis://127.0.0.1:6379/0"


def sign_in(client: FlaskClient, email: str, password: str = "wrong-password", address: str = "10.0.0.1"):
    return client.post("/login", data={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def assert_limited(response, sentence: str) -> int:
    """A 429 page saying what was limited and how long to wait; returns the wait."""
    assert response.status_code == 429, response.text
    wait = int(response.headers["Retry-After"])
    assert 1 <= wait <= 3600
    assert sentence in response.text and "Please wait" in response.text
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]  # an error page like any other
    return wait


def registration(email: str) -> dict[str, str]:
    return {"email": email, "password": "long-password", "confirm": "long-password"}


def attempts() -> int:
    return db.session.scalar(select(func.count(PaymentAttempt.id)))


@pytest.mark.app_config(RATELIMIT_LOGIN_PER_ADDRESS="3 per minute")
def test_sign_in_is_limited_per_network_address(app, client):
    for n in range(3):
        assert sign_in(client, f"nobody{n}@example.com").status_code == 200
    assert_limited(sign_in(client, "another@example.com"), "Too many sign-in attempts from your network.")
    assert client.get("/login", environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code == 200  # only tries count
    assert sign_in(client, "another@example.com", address="10.0.0.2").status_code == 200


@pytest.mark.app_config(RATELIMIT_LOGIN_PER_ACCOUNT="2 per minute")
def test_sign_in_is_limited_per_account_from_any_address(app, client):
    with app.app_context():
        make_learner("ann@example.com")
    assert sign_in(client, "ann@example.com", address="10.0.0.1").status_code == 200
    assert sign_in(client, " Ann@Example.COM", address="10.0.0.2").status_code == 200  # the same account
    limited = sign_in(client, "ann@example.com", "correct-horse", address="10.0.0.3")
    assert_limited(limited, "Too many sign-in attempts for this account.")
    assert client.get("/account").status_code == 302  # even the right password did not sign in
    assert sign_in(client, "bob@example.com", address="10.0.0.3").status_code == 200


@pytest.mark.app_config(RATELIMIT_ENABLED=False)
def test_wrong_passwords_lock_the_account_for_fifteen_minutes(app, client, clock: Clock):
    with app.app_context():
        make_learner("ann@example.com")
    for _ in range(LOGIN_MAX_FAILURES - 1):
        assert "Wrong e-mail or password." in sign_in(client, "ann@example.com").text
    last = sign_in(client, "ann@example.com")
    assert "Wrong e-mail or password." in last.text
    refused = sign_in(client, "ann@example.com", "correct-horse")
    assert refused.status_code == 200
    assert "Too many wrong passwords for this account. Try again in 15 minutes." in refused.text
    assert client.get("/account").status_code == 302  # not signed in
    with app.app_context():
        assert find_user("ann@example.com").login_locked_until is not None
    clock.advance(minutes=15)
    assert sign_in(client, "ann@example.com", "correct-horse").status_code == 302
    with app.app_context():
        user = find_user("ann@example.com")
        assert (user.login_failures, user.login_locked_until) == (0, None)


@pytest.mark.app_config(RATELIMIT_ENABLED=False)
def test_a_right_password_ends_the_run_of_wrong_ones(app, client):
    with app.app_context():
        make_learner("ann@example.com")
    for _ in range(LOGIN_MAX_FAILURES - 1):
        sign_in(client, "ann@example.com")
    assert sign_in(client, "ann@example.com", "correct-horse").status_code == 302
    client.post("/logout")
    for _ in range(LOGIN_MAX_FAILURES - 1):
        sign_in(client, "ann@example.com")
    assert sign_in(client, "ann@example.com", "correct-horse").status_code == 302
    with app.app_context():
        assert find_user("ann@example.com").login_failures == 0


@pytest.mark.app_config(RATELIMIT_REGISTER_PER_ADDRESS="2 per minute")
def test_registration_is_limited_per_network_address(app, client):
    for n in range(2):
        made = client.post("/register", data=registration(f"new{n}@example.com"),
                           environ_base={"REMOTE_ADDR": "10.0.0.1"})
        assert made.status_code == 302
        client.post("/logout")
    limited = client.post("/register", data=registration("new9@example.com"),
                          environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert_limited(limited, "Too many accounts registered from your network.")
    with app.app_context():
        assert find_user("new9@example.com") is None


@pytest.mark.app_config(RATELIMIT_REGISTER_PER_ACCOUNT="2 per minute")
def test_registration_is_limited_per_e_mail_address(app, client):
    """Probing whether an address has an account, from many addresses."""
    for n in range(2):
        client.post("/register", data=registration("taken@example.com"),
                    environ_base={"REMOTE_ADDR": f"10.0.0.{n}"})
    limited = client.post("/register", data=registration("TAKEN@example.com"),
                          environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert_limited(limited, "Too many registrations for this e-mail address.")


@pytest.mark.app_config(RATELIMIT_COUPON_PER_USER="3 per minute")
def test_coupon_attempts_are_limited_per_learner(app, client):
    with app.app_context():
        course_id = make_course()
        make_coupon("REAL")
        make_learner("ann@example.com")
        make_learner("bob@example.com")
    login(client, "ann@example.com")
    client.post(f"/cart/add/{course_id}")
    for guess in ("AAAA", "BBBB", "CCCC"):
        assert client.post("/cart/coupon", data={"code": guess}).status_code == 302
    assert_limited(client.post("/cart/coupon", data={"code": "REAL"}), "Too many coupon codes tried.")
    assert "REAL" not in client.get("/cart/").text  # the limited try changed nothing

    other = app.test_client()
    login(other, "bob@example.com")
    other.post(f"/cart/add/{course_id}")
    assert other.post("/cart/coupon", data={"code": "REAL"}).status_code == 302
    assert "REAL" in other.get("/cart/").text


@pytest.mark.app_config(RATELIMIT_QR_PER_USER="2 per minute")
def test_qr_codes_are_limited_per_learner_across_checkout_switch_retry_and_the_api(app, client):
    with app.app_context():
        first, second = make_course(slug="one"), make_course(slug="two")
        learner = make_learner("ann@example.com")
        token = create_token(learner, "phone")
        db.session.commit()
    login(client, "ann@example.com")
    order_no = checkout(client, [first])                                        # QR code 1
    switched = client.post(f"/orders/{order_no}/channel", data={"channel": "wechat"})  # QR code 2
    assert switched.status_code == 302
    with app.app_context():
        made = attempts()
    assert_limited(client.post(f"/orders/{order_no}/qr"), "Too many payment QR codes requested.")
    api = client.post("/api/v1/orders", json={"course_ids": [second]},
                      headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 429 and int(api.headers["Retry-After"]) >= 1
    assert api.json["code"] == "too_many_requests"
    assert api.json["message"].startswith("Too many payment QR codes requested. Please wait")
    with app.app_context():
        assert attempts() == made  # nothing was asked of the channel

    other = app.test_client()
    with app.app_context():
        make_learner("bob@example.com")
    login(other, "bob@example.com")
    assert checkout(other, [first])


@pytest.mark.app_config(RATELIMIT_QR_PER_USER="2 per minute")
def test_top_ups_and_memberships_share_the_qr_code_budget(app, client):
    from app.membership.models import MembershipPlan

    with app.app_context():
        make_learner("ann@example.com")
        plan = MembershipPlan(title_zh="月度会员", title_en="Monthly", price_fen=9900, period_days=30, pool_bps=5000)
        db.session.add(plan)
        db.session.commit()
        plan_id = plan.id
    login(client, "ann@example.com")
    assert client.post("/wallet/topup", data={"amount": "100", "channel": "alipay"}).status_code == 302
    assert client.post(f"/membership/{plan_id}/buy", data={"channel": "alipay"}).status_code == 302
    with app.app_context():
        made = attempts()
    assert_limited(client.post("/wallet/topup", data={"amount": "200", "channel": "alipay"}),
                   "Too many payment QR codes requested.")
    assert_limited(client.post(f"/membership/{plan_id}/buy", data={"channel": "wechat"}),
                   "Too many payment QR codes requested.")
    with app.app_context():
        assert attempts() == made


@pytest.mark.app_config(RATELIMIT_API_PER_TOKEN="3 per minute")
def test_the_api_is_limited_per_token(app, client):
    with app.app_context():
        ann, bob = make_learner("ann@example.com"), make_learner("bob@example.com")
        tokens = create_token(ann, "one"), create_token(bob, "two")
        db.session.commit()
    for _ in range(3):
        assert client.get("/api/v1/courses", headers={"Authorization": f"Bearer {tokens[0]}"}).status_code == 200
    limited = client.get("/api/v1/orders/CC00000000000000000001", headers={"Authorization": f"Bearer {tokens[0]}"})
    assert limited.status_code == 429 and limited.json["code"] == "too_many_requests"
    assert limited.json["retry_after"] == int(limited.headers["Retry-After"])
    assert client.get("/api/v1/courses", headers={"Authorization": f"Bearer {tokens[1]}"}).status_code == 200


@pytest.mark.app_config(TRUSTED_PROXIES=1, RATELIMIT_LOGIN_PER_ADDRESS="1 per minute")
def test_behind_a_proxy_each_visitor_counts_by_the_forwarded_address(app, client):
    def via_proxy(visitor: str):
        return client.post("/login", data={"email": "x@example.com", "password": "p"},
                           environ_base={"REMOTE_ADDR": "10.9.9.9"}, headers={"X-Forwarded-For": visitor})

    assert via_proxy("203.0.113.1").status_code == 200
    assert via_proxy("203.0.113.2").status_code == 200
    assert via_proxy("203.0.113.1").status_code == 429


@pytest.mark.app_config(RATELIMIT_LOGIN_PER_ADDRESS="1 per minute")
def test_without_a_trusted_proxy_a_forwarded_address_is_ignored(app, client):
    """A visitor who sends X-Forwarded-For themselves does not get a fresh budget."""
    headers = {"X-Forwarded-For": "203.0.113.1"}
    assert client.post("/login", data={"email": "x@example.com", "password": "p"}, headers=headers).status_code == 200
    headers = {"X-Forwarded-For": "203.0.113.2"}
    assert client.post("/login", data={"email": "x@example.com", "password": "p"}, headers=headers).status_code == 429


def test_a_limit_that_does_not_parse_stops_the_start(tmp_path):
    with pytest.raises(ConfigError, match="RATELIMIT_COUPON_PER_USER must read like"):
        load_config(str(tmp_path), environ={"RATELIMIT_COUPON_PER_USER": "ten a minute"})


@pytest.mark.parametrize("endpoint", sorted(ratelimits.UNLIMITED_ENDPOINTS))
def test_a_limit_on_an_endpoint_the_limiter_skips_stops_the_start(endpoint, database_url, keys_dir, tmp_path,
                                                                   monkeypatch):
    # The limiter never looks at these endpoints, so a limit put on one would silently not count.
    monkeypatch.setitem(ratelimits.ROUTE_LIMITS, endpoint, (ratelimits.COUPON,))
    with pytest.raises(RuntimeError, match="UNLIMITED_ENDPOINTS has a limit"):
        create_app(base_config(database_url, keys_dir, tmp_path))


def test_the_limits_default_to_redis_when_there_is_one(tmp_path):
    config = load_config(str(tmp_path), environ={"REDIS_URL": REDIS_URL, "JOBS_QUEUE_PREFIX": "shop"})
    assert (config["RATELIMIT_STORAGE_URI"], config["RATELIMIT_KEY_PREFIX"]) == (REDIS_URL, "shop-limits")
    assert load_config(str(tmp_path), environ={})["RATELIMIT_STORAGE_URI"] == "memory://"


@pytest.fixture
def two_workers(database_url, keys_dir, tmp_path, clock) -> Iterator[tuple[Flask, Flask, str]]:
    """Two apps (as two gunicorn workers would be) counting in the one real Redis."""
    prefix = f"limits-test-{uuid.uuid4().hex[:8]}"
    config = {**base_config(database_url, keys_dir, tmp_path), "CLOCK": clock,
              "RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": prefix,
              "RATELIMIT_LOGIN_PER_ACCOUNT": "2 per minute"}
    apps = create_app(config), create_app(config)
    reset_database(apps[0])
    yield *apps, prefix
    connection = redis.Redis.from_url(REDIS_URL)
    for key in connection.scan_iter(f"*{prefix}*"):
        connection.delete(key)
    connection.close()
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def test_workers_count_together_in_redis_and_its_keys_hold_no_e_mail(two_workers):
    first, second, prefix = two_workers
    assert sign_in(first.test_client(), "ann@example.com").status_code == 200
    assert sign_in(second.test_client(), "ann@example.com").status_code == 200
    assert sign_in(first.test_client(), "ann@example.com").status_code == 429
    connection = redis.Redis.from_url(REDIS_URL)
    keys = [key.decode() for key in connection.scan_iter(f"*{prefix}*")]
    connection.close()
    assert keys and not any("@" in key or "ann" in key for key in keys)
    assert all(re.search(r"account:[0-9a-f]{32}", key) or "address:" in key for key in keys)


@pytest.mark.app_config(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0", RATELIMIT_LOGIN_PER_ACCOUNT="2 per minute")
def test_a_redis_outage_falls_back_to_counting_in_memory(app, client):
    """Nothing listens on port 1: sign-in still works, and the limit still holds."""
    with app.app_context():
        make_learner("ann@example.com")
    assert sign_in(client, "ann@example.com").status_code == 200
    assert sign_in(client, "ann@example.com").status_code == 200
    assert sign_in(client, "ann@example.com", "correct-horse").status_code == 429
    assert sign_in(client, "bob@example.com", "correct-horse").status_code == 200
