"""Staff two-factor login: setting up TOTP (codes computed here with pyotp, as a phone
app would), the verify page (window, replay, lock), recovery codes used once, the back
office closed to a password-only staff session, no second factor for learners or
instructors, and an admin's audited reset of another staff member's factor."""
from __future__ import annotations

import hashlib
import re
from datetime import timezone
from typing import Callable

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_login import login_user
from sqlalchemy import func, select

from app.accounts import mfa, signin
from app.accounts.models import RecoveryCode, User
from app.accounts.services import AccountError, create_token
from app.audit.models import AuditEntry
from app.extensions import db
from app.fieldcrypto import FieldDecryptError, SealedField, generate_key_entry
from app.fieldkeys import field_keyring
from tests.admin import conftest as back_office
from tests.admin.conftest import PASSWORD, STAFF_EMAILS, audit_rows
from tests.admin.test_access_matrix import admin_routes, admin_views, url_for_rule
from tests.conftest import Clock
from tests.helpers import app_time, authenticators, element_text, login
from tests.test_concurrency import run_together

staff = back_office.staff
client_as = back_office.client_as
learner = back_office.learner

SETUP = "/second-factor/setup"
VERIFY = "/second-factor"
Clients = Callable[[str], FlaskClient]


def password_only(app: Flask, email: str, next_url: str | None = None) -> FlaskClient:
    """A client that gave the right password and nothing more."""
    client = app.test_client()
    data = {"email": email, "password": PASSWORD, "next": next_url or ""}
    assert client.post("/login", data=data).status_code == 302
    return client


def user(app: Flask, email: str) -> User:
    with app.app_context():
        row = db.session.scalar(select(User).where(User.email == email))
        db.session.expunge(row)
        return row


def code_at(secret: str, clock: Clock, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock().replace(tzinfo=timezone.utc), counter_offset=steps)


def set_up(app: Flask, clock: Clock, email: str) -> tuple[FlaskClient, str, list[str]]:
    """Through the pages: the password, the set-up page's secret, a code, the recovery
    codes. Returns the client (now verified), the secret and the codes."""
    client = password_only(app, email)
    secret = element_text(client.get(SETUP).text, "totp-secret").replace(" ", "")
    page = client.post(SETUP, data={"code": code_at(secret, clock)})
    assert page.status_code == 200 and 'id="recovery-codes"' in page.text
    return client, secret, element_text(page.text, "recovery-codes").split()


def flashes(client: FlaskClient) -> list[str]:
    with client.session_transaction() as session:
        return [message for _, message in session.get("_flashes", [])]


# --- Setting up ----------------------------------------------------------------------


def test_a_new_staff_member_sets_up_totp_gets_recovery_codes_once_and_reaches_admin(
    app: Flask, staff: dict[str, int], clock: Clock
) -> None:
    client = app.test_client()
    answer = client.post("/login", data={"email": STAFF_EMAILS["finance"], "password": PASSWORD})
    assert answer.headers["Location"] == "/second-factor/setup?next=/admin/"
    assert client.get("/admin/").headers["Location"] == "/second-factor/setup?next=/admin/"

    page = client.get(answer.headers["Location"])
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    qr = re.search(r'id="totp-qr">\s*(<svg.*?</svg>)', page.text, re.S)
    assert qr and "<script" not in qr.group(1)
    secret = element_text(page.text, "totp-secret").replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)  # 160 bits of base32
    # A reload offers the same secret: the phone may have scanned it already.
    assert element_text(client.get(SETUP).text, "totp-secret").replace(" ", "") == secret

    wrong = client.post(SETUP, data={"code": code_at(secret, clock, steps=3), "next": "/admin/"})
    assert wrong.status_code == 200 and "not right" in wrong.text
    assert user(app, STAFF_EMAILS["finance"]).mfa_enrolled_at is None

    done = client.post(SETUP, data={"code": code_at(secret, clock), "next": "/admin/"})
    assert done.status_code == 200 and done.headers["Cache-Control"] == "no-store"
    codes = element_text(done.text, "recovery-codes").split()
    assert len(codes) == len(set(codes)) == 10
    assert all(re.fullmatch(r"([2-9a-hjkmnp-z]{4}-){3}[2-9a-hjkmnp-z]{4}", code) for code in codes)
    assert 'href="/admin/" id="continue"' in done.text
    assert client.get("/admin/").status_code == 200

    finance = user(app, STAFF_EMAILS["finance"])
    assert finance.mfa_enrolled_at == clock()
    with app.app_context():
        stored = set(db.session.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == finance.id)))
    assert stored == {hashlib.sha256(code.replace("-", "").encode()).hexdigest() for code in codes}
    assert ("user.mfa_enrol", STAFF_EMAILS["finance"], "second factor set up") in audit_rows(app, "user")
    # The set-up page is done with: it now sends to the verify page.
    assert client.get(SETUP).headers["Location"].startswith(VERIFY)


def test_the_secret_is_stored_sealed_and_bound_to_its_user(app: Flask, staff: dict[str, int], clock: Clock) -> None:
    _, secret, _ = set_up(app, clock, STAFF_EMAILS["support"])
    support = user(app, STAFF_EMAILS["support"])
    assert secret not in (support.totp_ciphertext or "")
    sealed = SealedField(support.totp_key_id, support.totp_ciphertext)
    with app.app_context():
        assert field_keyring().decrypt(sealed, f"user:{support.id}:totp_secret") == secret
        with pytest.raises(FieldDecryptError):
            field_keyring().decrypt(sealed, f"user:{staff['admin']}:totp_secret")


# --- Verifying -----------------------------------------------------------------------


def test_the_verify_page_takes_a_current_code_once_within_one_step_either_side(
    app: Flask, staff: dict[str, int], clock: Clock
) -> None:
    email = STAFF_EMAILS["support"]
    _, secret, _ = set_up(app, clock, email)  # used the current step's code

    client = password_only(app, email, "/admin/refund/")
    assert client.get("/admin/").headers["Location"] == "/second-factor?next=/admin/"
    replayed = client.post(VERIFY, data={"code": code_at(secret, clock), "next": "/admin/refund/"})
    assert replayed.status_code == 200 and "not right" in replayed.text
    too_far = client.post(VERIFY, data={"code": code_at(secret, clock, steps=2)})
    assert "not right" in too_far.text
    answer = client.post(VERIFY, data={"code": code_at(secret, clock, steps=1), "next": "/admin/refund/"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/refund/"
    assert client.get("/admin/refund/").status_code == 200

    # The same code in another browser: refused, also once it is the step before now.
    other = password_only(app, email)
    assert "not right" in other.post(VERIFY, data={"code": code_at(secret, clock, steps=1)}).text
    clock.advance(seconds=60)
    assert "not right" in other.post(VERIFY, data={"code": code_at(secret, clock, steps=-1)}).text
    assert other.post(VERIFY, data={"code": code_at(secret, clock, steps=1)}).status_code == 302
    # After a later step was accepted, an unused earlier one in the window is refused too.
    third = password_only(app, email)
    assert "not right" in third.post(VERIFY, data={"code": code_at(secret, clock)}).text


def test_a_recovery_code_signs_in_once(app: Flask, staff: dict[str, int], clock: Clock) -> None:
    email = STAFF_EMAILS["admin"]
    _, _, codes = set_up(app, clock, email)
    client = password_only(app, email)
    typed = codes[3].replace("-", " ").upper()  # as read off paper
    answer = client.post(VERIFY, data={"code": typed})
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/"
    assert any("recovery code; 9 left" in message for message in flashes(client))
    assert client.get("/admin/").status_code == 200
    assert ("user.mfa_recovery_code", email, "signed in with a recovery code") in audit_rows(app, "user")

    again = password_only(app, email)
    assert "not right" in again.post(VERIFY, data={"code": codes[3]}).text
    with app.app_context():
        assert mfa.recovery_codes_left(staff["admin"]) == 9


def test_five_wrong_codes_lock_the_second_factor_for_fifteen_minutes(
    app: Flask, staff: dict[str, int], clock: Clock
) -> None:
    email = STAFF_EMAILS["finance"]
    _, secret, codes = set_up(app, clock, email)
    client = password_only(app, email)
    for _ in range(mfa.MAX_FAILURES):
        assert "not right" in client.post(VERIFY, data={"code": "000000"}).text
    locked = client.post(VERIFY, data={"code": code_at(secret, clock, steps=1)})
    assert locked.status_code == 200 and "Too many wrong codes. Try again in 15 minutes." in locked.text
    assert "Too many" in client.post(VERIFY, data={"code": codes[0]}).text  # nor a recovery code
    clock.advance(minutes=15)
    assert client.post(VERIFY, data={"code": code_at(secret, clock)}).status_code == 302


def test_one_code_sent_twice_at_once_is_accepted_once(app: Flask, staff: dict[str, int], clock: Clock) -> None:
    _, secret, _ = set_up(app, clock, STAFF_EMAILS["support"])
    code = code_at(secret, clock, steps=1)
    accepted: list[bool] = []

    def verify(_: int) -> None:
        with app.app_context():
            check = mfa.verify_second_factor(staff["support"], code)
            db.session.commit()
            accepted.append(check.accepted)

    assert run_together(2, verify) == []
    assert sorted(accepted) == [False, True]


def test_the_second_factor_lapses_after_twelve_hours_and_with_another_browser(
    app: Flask, staff: dict[str, int], clock: Clock
) -> None:
    client, secret, _ = set_up(app, clock, STAFF_EMAILS["support"])
    clock.advance(hours=11, minutes=59)
    assert client.get("/admin/").status_code == 200
    # The same cookie sent by another browser (user agent) must pass the factor again.
    elsewhere = client.get("/admin/", headers={"User-Agent": "curl/8.0"})
    assert elsewhere.headers["Location"] == "/second-factor?next=/admin/"
    clock.advance(minutes=1)
    assert client.get("/admin/").headers["Location"] == "/second-factor?next=/admin/"
    assert client.post(VERIFY, data={"code": code_at(secret, clock)}).status_code == 302
    assert client.get("/admin/").status_code == 200


# --- The gate ------------------------------------------------------------------------


@pytest.mark.parametrize("enrolled", [False, True], ids=["not set up", "set up"])
def test_a_password_only_staff_session_reaches_no_admin_route(
    app: Flask, staff: dict[str, int], clock: Clock, enrolled: bool
) -> None:
    if enrolled:
        set_up(app, clock, STAFF_EMAILS["admin"])
    client = password_only(app, STAFF_EMAILS["admin"])
    page = VERIFY if enrolled else SETUP
    routes = admin_routes(app)
    assert len(routes) > 60
    for view, function, rule, method in routes:
        url = url_for_rule(rule, view, {})
        answer = client.open(url, method=method, data={"reason": "x"})
        assert answer.status_code == 302, (method, url)
        assert answer.headers["Location"].startswith(f"{page}?next=/admin"), (method, url)


def test_every_admin_view_itself_refuses_a_staff_member_without_the_second_factor(
    app: Flask, staff: dict[str, int]
) -> None:
    """The back office's own check, beneath the app-wide one: no view is open to an
    admin's session until the second factor is marked on it."""
    with app.test_request_context("/admin/"):
        login_user(db.session.get(User, staff["admin"]))
        assert [view.endpoint for view in admin_views(app) if view.is_accessible()] == []
        signin.mark_second_factor()
        assert all(view.is_accessible() for view in admin_views(app))


def test_a_password_only_staff_session_reaches_no_learner_page_but_the_api_works(
    app: Flask, staff: dict[str, int]
) -> None:
    client = password_only(app, STAFF_EMAILS["support"])
    for url in ("/", "/cart/", "/orders", "/account", "/my/courses"):
        answer = client.get(url)
        assert answer.status_code == 302 and answer.headers["Location"].startswith(SETUP), url
    assert client.post("/account/tokens", data={"name": "sneaky"}).headers["Location"].startswith(SETUP)
    with app.app_context():
        token = create_token(staff["support"], "app")
        db.session.commit()
    assert client.get("/api/v1/courses", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/healthz").status_code in (200, 503)
    assert client.post("/logout").status_code == 302


@pytest.mark.parametrize("visitor", ["learner", "instructor"])
def test_learners_and_instructors_cannot_set_up_a_second_factor(
    app: Flask, learner: int, client_as: Clients, staff: dict[str, int], visitor: str
) -> None:
    client = client_as(visitor)
    for url in (SETUP, VERIFY):
        assert client.get(url).status_code == 403
        assert client.post(url, data={"code": "123456"}).status_code == 403
    user_id = learner if visitor == "learner" else staff["instructor"]
    with app.app_context():
        for attempt in (lambda: mfa.offered_secret(user_id), lambda: mfa.confirm_enrolment(user_id, "123456")):
            with pytest.raises(AccountError) as refused:
                attempt()
            assert refused.value.code == "not_staff"
        assert db.session.get(User, user_id).totp_ciphertext is None


def test_the_anonymous_are_sent_to_log_in_from_the_second_factor_pages(client: FlaskClient) -> None:
    for url in (SETUP, VERIFY):
        assert client.get(url).headers["Location"].startswith("/login?next=")


# --- An admin resets another staff member's second factor ---------------------------


def test_an_admin_resets_a_staff_members_second_factor_audited_and_ends_their_sessions(
    app: Flask, staff: dict[str, int], client_as: Clients, clock: Clock
) -> None:
    support = client_as("support")  # set up and verified through the pages
    assert support.get("/account").status_code == 200
    admin = client_as("admin")
    detail = admin.get(f"/admin/user/{staff['support']}/")
    assert detail.status_code == 200 and "10 recovery code(s) left" in detail.text
    action = f"/admin/user/{staff['support']}/reset-second-factor"
    assert f'action="{action}"' in detail.text

    assert admin.post(action, data={"reason": " "}).status_code == 302
    assert user(app, STAFF_EMAILS["support"]).mfa_enrolled_at is not None  # no reason, no reset
    assert admin.post(action, data={"reason": "Lost phone, ticket 42"}).status_code == 302

    target = user(app, STAFF_EMAILS["support"])
    assert (target.totp_ciphertext, target.totp_key_id, target.mfa_enrolled_at) == (None, None, None)
    assert target.session_version == 2
    with app.app_context():
        assert db.session.scalar(select(func.count(RecoveryCode.id)).where(RecoveryCode.user_id == target.id)) == 0
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.mfa_reset"))
        assert (entry.actor_email, entry.target_id, entry.reason) == (
            STAFF_EMAILS["admin"], str(target.id), "Lost phone, ticket 42")
        assert '"recovery_codes_left": 10' in entry.before and target.email not in (entry.after or "")
    # Their session is over; at the next login they set up a new factor.
    assert support.get("/account").headers["Location"].startswith("/login")
    fresh = password_only(app, STAFF_EMAILS["support"])
    assert fresh.get("/admin/").headers["Location"].startswith(SETUP)
    assert "has no second factor" in admin.post(action, data={"reason": "again"}, follow_redirects=True).text


@pytest.mark.parametrize("visitor", ["support", "finance"])
def test_only_an_admin_may_reset_a_second_factor(
    app: Flask, staff: dict[str, int], client_as: Clients, visitor: str
) -> None:
    client_as("finance" if visitor == "support" else "support")
    target = staff["finance" if visitor == "support" else "support"]
    answer = client_as(visitor).post(f"/admin/user/{target}/reset-second-factor", data={"reason": "x"})
    assert answer.status_code == 403
    assert user(app, STAFF_EMAILS["finance" if visitor == "support" else "support"]).mfa_enrolled_at is not None
    with app.app_context():
        with pytest.raises(AccountError) as refused:
            mfa.reset_second_factor(target, staff[visitor], "x")
        assert refused.value.code == "forbidden"


def test_an_admin_cannot_reset_their_own_second_factor(
    app: Flask, staff: dict[str, int], client_as: Clients
) -> None:
    admin = client_as("admin")
    page = admin.get(f"/admin/user/{staff['admin']}/")
    assert page.status_code == 200 and "reset-second-factor" not in page.text
    refused = admin.post(f"/admin/user/{staff['admin']}/reset-second-factor", data={"reason": "mine"},
                         follow_redirects=True)
    assert "Ask another admin" in refused.text
    assert user(app, STAFF_EMAILS["admin"]).mfa_enrolled_at is not None
    assert admin.get("/admin/").status_code == 200  # still signed in
    assert [row for row in audit_rows(app, "user") if row[0] == "user.mfa_reset"] == []


def test_an_operator_resets_the_last_admins_second_factor_at_the_command_line(
    app: Flask, staff: dict[str, int], client_as: Clients
) -> None:
    admin = client_as("admin")
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["users", "reset-second-factor", STAFF_EMAILS["admin"], "--reason", " "])
    assert refused.exit_code != 0 and "Please give a reason" in refused.output
    result = runner.invoke(args=["users", "reset-second-factor", STAFF_EMAILS["admin"],
                                 "--reason", "Only admin lost phone and codes"])
    assert result.exit_code == 0, result.output
    assert ("user.mfa_reset", "system", "Only admin lost phone and codes") in audit_rows(app, "user")
    assert user(app, STAFF_EMAILS["admin"]).totp_ciphertext is None
    assert admin.get("/admin/").headers["Location"].startswith("/login")


# --- Keys ----------------------------------------------------------------------------


def test_rotating_the_field_key_reseals_second_factor_secrets(
    app: Flask, staff: dict[str, int], clock: Clock
) -> None:
    old_key, new_key = generate_key_entry("k2026a"), generate_key_entry("k2026b")
    app.config["FIELD_ENCRYPTION_KEY"] = old_key
    app.extensions.pop("cashier.field_keyring", None)
    email = STAFF_EMAILS["support"]
    login(app.test_client(), email, PASSWORD)
    app.config["FIELD_ENCRYPTION_KEY"] = f"{new_key},{old_key}"
    app.extensions.pop("cashier.field_keyring")
    result = app.test_cli_runner().invoke(args=["earnings", "rotate-keys"])
    assert result.exit_code == 0 and "1 second-factor secret(s) re-sealed under key k2026b" in result.output
    app.config["FIELD_ENCRYPTION_KEY"] = new_key  # the old key dropped
    app.extensions.pop("cashier.field_keyring")
    assert user(app, email).totp_key_id == "k2026b"
    clock.advance(seconds=30)
    keeper = authenticators(app)[email]
    with app.app_context():
        assert mfa.verify_second_factor(staff["support"], keeper.next_code(app_time(app)) or "").accepted
