"""Sessions and cookies: rotated at login, ended by logout (a copied cookie included),
HttpOnly / SameSite=Lax / Secure over https, and only local paths after a login."""
from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.accounts.views import safe_next
from app.config import load_config
from app.extensions import db
from tests.admin import conftest as back_office
from tests.admin.conftest import LEARNER_EMAIL, PASSWORD, STAFF_EMAILS
from tests.conftest import base_config
from tests.helpers import login

staff = back_office.staff
learner = back_office.learner


def session_of(client: FlaskClient) -> dict:
    with client.session_transaction() as session:
        return dict(session)


def test_login_starts_a_new_session_that_keeps_nothing_from_before(
    app: Flask, client: FlaskClient, learner: int
) -> None:
    client.get("/login")
    with client.session_transaction() as session:
        session["planted"] = "by someone who fixed this browser's cookie"
        session["_user_id"] = "999:1"
    before = client.get_cookie("session").value
    login(client, LEARNER_EMAIL)
    after = client.get_cookie("session").value
    assert after != before
    values = session_of(client)
    assert "planted" not in values and values["_user_id"] == f"{learner}:1"


def test_a_second_factor_mark_does_not_survive_another_login(
    app: Flask, staff: dict[str, int]
) -> None:
    client = app.test_client()
    login(client, STAFF_EMAILS["admin"], PASSWORD)
    assert client.get("/admin/").status_code == 200
    answer = client.post("/login", data={"email": STAFF_EMAILS["support"], "password": PASSWORD})
    assert answer.headers["Location"].startswith("/second-factor/setup")
    assert "second_factor" not in session_of(client)
    assert client.get("/admin/").headers["Location"].startswith("/second-factor/setup")


def test_logout_ends_the_session_and_a_copy_of_its_cookie(
    app: Flask, client: FlaskClient, learner: int
) -> None:
    login(client, LEARNER_EMAIL)
    other_browser = app.test_client()
    login(other_browser, LEARNER_EMAIL)
    copied = client.get_cookie("session").value
    assert client.get("/account").status_code == 200

    assert client.post("/logout").status_code == 302
    assert client.get("/account").headers["Location"].startswith("/login")
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/account").headers["Location"].startswith("/login")
    # Logging out ends the user's sessions everywhere, the other browser's too.
    assert other_browser.get("/account").headers["Location"].startswith("/login")
    login(client, LEARNER_EMAIL)
    assert client.get("/account").status_code == 200


def test_a_session_from_before_session_versions_loads_nobody(app: Flask, client: FlaskClient, learner: int) -> None:
    with client.session_transaction() as session:
        session["_user_id"] = str(learner)  # what the session held before versions
    assert client.get("/account").headers["Location"].startswith("/login")


def test_the_session_cookie_is_httponly_and_samesite_lax_not_secure_over_http(
    client: FlaskClient, learner: int
) -> None:
    answer = client.post("/login", data={"email": LEARNER_EMAIL, "password": "correct-horse"})
    [cookie] = [value for value in answer.headers.getlist("Set-Cookie") if value.startswith("session=")]
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "httponly" in flags and flags["samesite"] == "SameSite=Lax"
    assert "secure" not in flags  # the test site is served over http


def test_the_session_cookie_is_secure_when_the_site_is_served_over_https(
    database_url: str, keys_dir: Path, tmp_path: Path, learner: int
) -> None:
    environment = {"PUBLIC_BASE_URL": "https://pay.example.com"}
    assert load_config(str(tmp_path), environ=environment)["SESSION_COOKIE_SECURE"] is True
    assert load_config(str(tmp_path), environ={})["SESSION_COOKIE_SECURE"] is False
    secure_app = create_app({**base_config(database_url, keys_dir, tmp_path), "SESSION_COOKIE_SECURE": True})
    answer = secure_app.test_client().post(
        "/login", data={"email": LEARNER_EMAIL, "password": "correct-horse"}, base_url="https://pay.example.com")
    assert answer.status_code == 302
    [cookie] = [value for value in answer.headers.getlist("Set-Cookie") if value.startswith("session=")]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    with secure_app.app_context():
        db.engine.dispose()


UNSAFE_TARGETS = [
    "//evil.example",
    "https://evil.example",
    "http:/evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "/\t/evil.example",
    "/\n/evil.example",
    "///evil.example",
    "evil.example",
    "",
]


@pytest.mark.parametrize("target", UNSAFE_TARGETS)
def test_a_next_that_leaves_the_site_goes_to_the_catalog(
    app: Flask, client: FlaskClient, learner: int, target: str
) -> None:
    with app.test_request_context():
        assert safe_next(target) == "/"
    answer = client.post("/login", data={"email": LEARNER_EMAIL, "password": "correct-horse", "next": target})
    assert answer.status_code == 302 and answer.headers["Location"] == "/"


@pytest.mark.parametrize("target", ["/orders", "/admin/refund/?page=1", "/courses/课程"])
def test_a_local_next_is_followed(app: Flask, target: str) -> None:
    with app.test_request_context():
        assert safe_next(target) == target


def test_staff_land_in_the_back_office_and_keep_a_safe_next_through_the_second_factor(
    app: Flask, staff: dict[str, int]
) -> None:
    client = app.test_client()
    answer = client.post("/login", data={"email": STAFF_EMAILS["finance"], "password": PASSWORD,
                                         "next": "https://evil.example/admin/"})
    assert answer.headers["Location"] == "/second-factor/setup?next=/admin/"
    answer = client.get("/second-factor?next=//evil.example")
    assert answer.headers["Location"] == "/second-factor/setup?next=/admin/"
