"""JSON API v1: bearer tokens, Idempotency-Key, stable error codes; tokens from the account
page and the CLI; `flask users create`."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.accounts.models import ApiToken, User
from app.accounts.services import authenticate, create_token, revoke_token
from app.catalog.models import Enrollment
from app.checkout.models import Order
from app.extensions import db
from app.payments.models import PaymentAttempt
from tests.helpers import login, make_coupon, make_course, make_learner


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def order_count() -> int:
    return db.session.scalar(select(func.count(Order.id)))


def token_for(email: str = "ann@example.com", password: str = "correct-horse") -> tuple[int, str]:
    user_id = make_learner(email, password)
    token = create_token(user_id, "test")
    db.session.commit()
    return user_id, token


@pytest.fixture
def course_id(app) -> int:
    with app.app_context():
        return make_course(10000, slug="python")


@pytest.fixture
def token(app) -> str:
    with app.app_context():
        return token_for()[1]


def test_courses_lists_published_ids_and_prices_in_fen(app, client):
    with app.app_context():
        first = make_course(10000, slug="a")
        second = make_course(4990, slug="b")
    response = client.get("/api/v1/courses")
    assert response.status_code == 200
    listed = [(course["id"], course["price_fen"], course["currency"]) for course in response.json["courses"]]
    assert listed == [(first, 10000, "CNY"), (second, 4990, "CNY")]


def test_create_order_without_a_token_is_401_json(app, client, course_id):
    response = client.post("/api/v1/orders", json={"course_ids": [course_id]})
    assert response.status_code == 401
    assert response.json["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    with app.app_context():
        assert order_count() == 0


@pytest.mark.parametrize(
    "authorization",
    ["Bearer cc_not-a-real-token", "Bearer ", "Token cc_abc", "cc_abc", "Basic dXNlcjpwYXNz"],
    ids=["unknown_token", "empty_bearer", "wrong_scheme", "token_without_scheme", "basic"],
)
def test_create_order_with_a_bad_authorization_header_is_401(app, client, course_id, token, authorization):
    if authorization == "cc_abc":
        authorization = token  # the right secret without the Bearer scheme
    response = client.post("/api/v1/orders", json={"course_ids": [course_id]}, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json["code"] == "unauthorized"


def test_create_order_returns_201_with_amounts_in_fen_deadline_and_qr_code(app, client, clock, token):
    app.config["TAX_RATE"] = Decimal("0.05")
    with app.app_context():
        course_id = make_course(10000)
        make_coupon("TEN", percent_off_bps=1000)
    response = client.post(
        "/api/v1/orders", json={"course_ids": [course_id], "coupon": "ten"}, headers=bearer(token)
    )
    assert response.status_code == 201, response.json
    body = response.json
    assert re.fullmatch(r"CC\d{20}", body["order_no"])
    assert body["status"] == "pending"
    assert (body["subtotal_fen"], body["discount_fen"], body["tax_fen"], body["total_fen"]) == (10000, 1000, 450, 9450)
    assert body["coupon"] == "TEN"
    assert body["lines"] == [
        {"course_id": course_id, "title": "课程 course", "list_price_fen": 10000,
         "discount_fen": 1000, "tax_fen": 450, "amount_fen": 9450}
    ]
    deadline = clock.current.replace(tzinfo=timezone.utc) + timedelta(minutes=15)
    assert datetime.fromisoformat(body["expires_at"]) == deadline
    assert body["channel"] == "alipay"
    assert isinstance(body["qr_code"], str) and body["qr_code"].startswith("http")
    with app.app_context():
        attempt = db.session.scalar(select(PaymentAttempt))
        assert attempt.qr_code == body["qr_code"]
        assert attempt.amount_fen == 9450


def test_same_idempotency_key_and_body_returns_the_same_order(app, client, course_id, token):
    headers = {**bearer(token), "Idempotency-Key": "order-1"}
    first = client.post("/api/v1/orders", json={"course_ids": [course_id], "coupon": None}, headers=headers)
    second = client.post("/api/v1/orders", json={"course_ids": [course_id]}, headers=headers)
    assert first.status_code == 201 and second.status_code == 201
    assert second.json["order_no"] == first.json["order_no"]
    assert second.json["qr_code"] == first.json["qr_code"]
    with app.app_context():
        assert order_count() == 1
        assert db.session.scalar(select(func.count(PaymentAttempt.id))) == 1


def test_without_an_idempotency_key_a_repeat_gets_the_order_still_waiting(app, client, course_id, token):
    """No key, so no idempotency; but one course never has two orders waiting to be paid
    (tests/test_duplicate_purchases.py)."""
    first = client.post("/api/v1/orders", json={"course_ids": [course_id]}, headers=bearer(token))
    second = client.post("/api/v1/orders", json={"course_ids": [course_id]}, headers=bearer(token))
    assert first.status_code == second.status_code == 201
    assert first.json["order_no"] == second.json["order_no"]
    with app.app_context():
        assert order_count() == 1


@pytest.mark.parametrize("changed", ["courses", "coupon", "channel"])
def test_same_idempotency_key_with_a_different_body_is_422_conflict(app, client, course_id, token, changed):
    with app.app_context():
        other_id = make_course(5000, slug="other")
        make_coupon("TEN")
    headers = {**bearer(token), "Idempotency-Key": "order-1"}
    first = client.post("/api/v1/orders", json={"course_ids": [course_id]}, headers=headers)
    assert first.status_code == 201
    body = {
        "courses": {"course_ids": [course_id, other_id]},
        "coupon": {"course_ids": [course_id], "coupon": "TEN"},
        "channel": {"course_ids": [course_id], "channel": "wechat"},
    }[changed]
    second = client.post("/api/v1/orders", json=body, headers=headers)
    assert second.status_code == 422
    assert second.json["code"] == "idempotency_conflict"
    with app.app_context():
        assert order_count() == 1


def test_idempotency_keys_belong_to_one_user(app, client, course_id, token):
    with app.app_context():
        _, other_token = token_for("bob@example.com")
    mine = client.post("/api/v1/orders", json={"course_ids": [course_id]}, headers={**bearer(token), "Idempotency-Key": "k"})
    theirs = client.post(
        "/api/v1/orders", json={"course_ids": [course_id]}, headers={**bearer(other_token), "Idempotency-Key": "k"}
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json["order_no"] != theirs.json["order_no"]


MALFORMED = [
    ("not_json", {"data": "course_ids=1", "content_type": "application/json"}, 400, "invalid_json"),
    ("json_list", {"json": [1]}, 400, "invalid_json"),
    ("form_body", {"data": {"course_ids": "1"}}, 400, "invalid_json"),
    ("missing", {"json": {}}, 422, "invalid_course_ids"),
    ("not_a_list", {"json": {"course_ids": 1}}, 422, "invalid_course_ids"),
    ("strings", {"json": {"course_ids": ["1"]}}, 422, "invalid_course_ids"),
    ("empty", {"json": {"course_ids": []}}, 422, "invalid_course_ids"),
    ("booleans", {"json": {"course_ids": [True]}}, 422, "invalid_course_ids"),
    ("floats", {"json": {"course_ids": [1.0]}}, 422, "invalid_course_ids"),
    ("zero", {"json": {"course_ids": [0]}}, 422, "invalid_course_ids"),
    ("nested", {"json": {"course_ids": [[1]]}}, 422, "invalid_course_ids"),
    ("string", {"json": {"course_ids": "1,2", "coupon": 5}}, 422, "invalid_course_ids"),
    ("coupon_not_string", {"json": {"course_ids": "COURSE_LIST", "coupon": 5}}, 422, "invalid_coupon"),
    ("coupon_list", {"json": {"course_ids": "COURSE_LIST", "coupon": ["TEN"]}}, 422, "invalid_coupon"),
    ("coupon_too_long", {"json": {"course_ids": "COURSE_LIST", "coupon": "X" * 41}}, 422, "invalid_coupon"),
    ("channel_not_string", {"json": {"course_ids": "COURSE_LIST", "channel": 1}}, 422, "invalid_channel"),
]


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED]
)
def test_malformed_order_body_is_refused_with_a_stable_code(app, client, course_id, token, request_kwargs, status, code):
    kwargs = dict(request_kwargs)
    if "json" in kwargs and isinstance(kwargs["json"], dict):
        body = dict(kwargs["json"])
        if body.get("course_ids") == "COURSE_LIST":
            body["course_ids"] = [course_id]  # a valid list, so only the other field is wrong
        kwargs["json"] = body
    response = client.post("/api/v1/orders", headers=bearer(token), **kwargs)
    assert response.status_code == status
    assert response.is_json
    assert response.json["code"] == code
    assert response.json["message"]
    with app.app_context():
        assert order_count() == 0


def test_an_overlong_idempotency_key_is_refused(app, client, course_id, token):
    response = client.post(
        "/api/v1/orders", json={"course_ids": [course_id]}, headers={**bearer(token), "Idempotency-Key": "k" * 101}
    )
    assert response.status_code == 400
    assert response.json["code"] == "invalid_idempotency_key"
    with app.app_context():
        assert order_count() == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"course_ids": [9999]}, 422, "course_not_found"),
        ({"course_ids": ["COURSE", 9999]}, 422, "course_not_found"),
        ({"course_ids": ["COURSE"], "coupon": "NOPE"}, 422, "coupon_not_found"),
        ({"course_ids": ["COURSE"], "channel": "paypal"}, 422, "unknown_channel"),
    ],
)
def test_order_for_unknown_things_is_422_and_creates_nothing(app, client, course_id, token, body, status, code):
    body = {**body, "course_ids": [course_id if c == "COURSE" else c for c in body["course_ids"]]}
    response = client.post("/api/v1/orders", json=body, headers=bearer(token))
    assert response.status_code == status
    assert response.json["code"] == code
    with app.app_context():
        assert order_count() == 0


def test_order_for_an_owned_course_is_409(app, client, course_id):
    with app.app_context():
        user_id, token = token_for()
        db.session.add(Enrollment(user_id=user_id, course_id=course_id))
        db.session.commit()
    response = client.post("/api/v1/orders", json={"course_ids": [course_id]}, headers=bearer(token))
    assert response.status_code == 409
    assert response.json["code"] == "course_owned"


def test_get_order_shows_my_order_and_hides_another_users_order(app, client, course_id, token):
    with app.app_context():
        _, other_token = token_for("bob@example.com")
    created = client.post("/api/v1/orders", json={"course_ids": [course_id]}, headers=bearer(token))
    order_no = created.json["order_no"]

    mine = client.get(f"/api/v1/orders/{order_no}", headers=bearer(token))
    assert mine.status_code == 200
    assert mine.json["order_no"] == order_no and mine.json["total_fen"] == 10000

    theirs = client.get(f"/api/v1/orders/{order_no}", headers=bearer(other_token))
    assert theirs.status_code == 404
    assert theirs.json["code"] == "order_not_found"
    assert client.get("/api/v1/orders/CC0000", headers=bearer(token)).json["code"] == "order_not_found"
    assert client.get(f"/api/v1/orders/{order_no}").status_code == 401


def test_revoked_token_is_401(app, client, course_id):
    with app.app_context():
        user_id, token = token_for()
        token_id = db.session.scalar(select(ApiToken.id))
    assert client.post("/api/v1/orders", json={"course_ids": [course_id]}, headers=bearer(token)).status_code == 201
    with app.app_context():
        assert revoke_token(user_id, token_id)
        db.session.commit()
    response = client.post("/api/v1/orders", json={"course_ids": [course_id]}, headers=bearer(token))
    assert response.status_code == 401
    assert response.json["code"] == "unauthorized"


def test_account_page_creates_a_token_shown_once_and_revokes_it(app, client, course_id):
    with app.app_context():
        make_learner()
    login(client)
    created = client.post("/account/tokens", data={"name": "my phone"})
    assert created.status_code == 200
    match = re.search(r'<pre class="token" id="new-token">(cc_[A-Za-z0-9_-]+)</pre>', created.get_data(as_text=True))
    assert match, created.get_data(as_text=True)
    token = match.group(1)

    account = client.get("/account").get_data(as_text=True)
    assert token not in account  # shown once
    assert "my phone" in account and token[:10] in account
    with app.app_context():
        row = db.session.scalar(select(ApiToken))
        assert row.name == "my phone" and row.token_hash != token and token not in row.token_hash

    assert client.post("/api/v1/orders", json={"course_ids": [course_id]}, headers=bearer(token)).status_code == 201

    revoked = client.post(f"/account/tokens/{row.id}/revoke", follow_redirects=True)
    assert "The token is revoked." in revoked.get_data(as_text=True)
    assert client.get("/api/v1/orders/CC0000", headers=bearer(token)).status_code == 401
    assert "my phone" not in client.get("/account").get_data(as_text=True)


def test_a_learner_cannot_revoke_another_users_token(app, client, course_id):
    with app.app_context():
        _, other_token = token_for("bob@example.com")
        other_token_id = db.session.scalar(select(ApiToken.id))
        make_learner()
    login(client)
    response = client.post(f"/account/tokens/{other_token_id}/revoke", follow_redirects=True)
    assert "No such token." in response.get_data(as_text=True)
    assert client.get("/api/v1/orders/CC0000", headers=bearer(other_token)).json["code"] == "order_not_found"


def test_cli_users_token_prints_a_token_that_works_on_the_api(app, runner, course_id):
    with app.app_context():
        make_learner()
    result = runner.invoke(args=["users", "token", "Ann@Example.com"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("cc_")
    response = app.test_client().post("/api/v1/orders", json={"course_ids": [course_id]}, headers=bearer(token))
    assert response.status_code == 201


def test_cli_users_token_for_an_unknown_email_fails(app, runner):
    result = runner.invoke(args=["users", "token", "nobody@example.com"])
    assert result.exit_code != 0
    assert "no user nobody@example.com" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(ApiToken.id))) == 0


def test_cli_users_create_makes_a_support_user_with_the_password_option(app, runner):
    result = runner.invoke(
        args=["users", "create", "--email", "Sue@Example.com", "--role", "support", "--password", "long-password-1"]
    )
    assert result.exit_code == 0, result.output
    assert "created support sue@example.com" in result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "sue@example.com"))
        assert user.role == "support" and user.is_staff
        assert authenticate("sue@example.com", "long-password-1").id == user.id
        assert authenticate("sue@example.com", "wrong-password") is None


def test_cli_users_create_prompts_for_the_password_twice(app, runner):
    result = runner.invoke(
        args=["users", "create", "--email", "fin@example.com", "--role", "finance"],
        input="long-password-2\nlong-password-2\n",
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "fin@example.com"))
        assert user.role == "finance"
        assert authenticate("fin@example.com", "long-password-2") is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "x@example.com", "--role", "root", "--password", "long-password-1"], "root"),
        (["--email", "x@example.com", "--password", "short"], "at least 8 characters"),
        (["--email", "ann@example.com", "--password", "long-password-1"], "already exists"),
    ],
    ids=["unknown_role", "short_password", "taken_email"],
)
def test_cli_users_create_refuses_bad_input(app, runner, args, message):
    with app.app_context():
        make_learner()
    result = runner.invoke(args=["users", "create", *args])
    assert result.exit_code != 0
    assert message in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 1
