"""Users, passwords and API tokens."""
from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from app.accounts.models import PASSWORD_HASH_METHOD, ROLES, ApiToken, User
from app.audit.services import record
from app.errors import ServiceError
from app.extensions import db
from app.timeutil import now

log = logging.getLogger(__name__)

TOKEN_PREFIX = "cc_"
# Wrong passwords in a row that lock an account's password step, and for how long.
LOGIN_MAX_FAILURES = 10
LOGIN_LOCKOUT = timedelta(minutes=15)


class AccountError(ServiceError):
    """A refused account step (see ServiceError: the message is lazy, translated when
    read; the back office reads it in English)."""


def session_id_parts(session_id: object) -> tuple[int, int] | None:
    """The user id and session version in what `User.get_id` put in the session
    ("id:version"), or None for anything else (a session from before versions, say)."""
    if not isinstance(session_id, str):
        return None
    user_id, _, version = session_id.partition(":")
    if not all(part.isascii() and part.isdigit() and len(part) <= 10 for part in (user_id, version)):
        return None
    return int(user_id), int(version)


def load_user(session_id: str) -> User | None:
    """Flask-Login's loader, given what `User.get_id` put in the session ("id:version").

    A session of an older version (the user logged out since, or an admin reset their
    second factor) loads nobody, so a copied cookie stops working; nor does the session
    of a deactivated account. The status poll applies the same rules in its own query
    (app/checkout/status_poll.py).
    """
    parts = session_id_parts(session_id)
    if parts is None:
        return None
    user = db.session.get(User, parts[0])
    if user is None or user.session_version != parts[1] or not user.is_active:
        return None
    return user


def get_user(user_id: int) -> User | None:
    return db.session.get(User, user_id)


def end_sessions(user_id: int) -> None:
    """Every session of this user, on every browser, stops loading them."""
    db.session.execute(
        update(User).where(User.id == user_id).values(session_version=User.session_version + 1)
    )
    db.session.flush()


def normalize_email(email: str) -> str:
    return email.strip().lower()


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalize_email(email)))


def create_user(email: str, password: str, display_name: str = "", role: str = "learner") -> int:
    if role not in ROLES:
        raise AccountError("invalid_role", f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise AccountError("weak_password", _l("The password needs at least 8 characters."))
    email = normalize_email(email)
    if find_user(email) is not None:
        raise AccountError("email_taken", _l("An account with this e-mail already exists."))
    user = User(email=email, display_name=display_name or email.split("@")[0], role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user.id


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None.

    Ten wrong passwords in a row lock the account for fifteen minutes: AccountError
    "account_locked", and while locked no password is even checked, so guessing gets no
    further by going on. A right password ends the run of failures. The caller commits
    in every case, so the count is kept.
    """
    user = find_user(email)
    if user is None:
        # Spend the same time as a real check, so timing does not reveal who has an account.
        check_password_hash(_dummy_hash(), password)
        return None
    moment = now()
    if user.login_locked_until is not None and user.login_locked_until > moment:
        minutes = max(1, int((user.login_locked_until - moment).total_seconds() + 59) // 60)
        raise AccountError("account_locked", _l("Too many wrong passwords for this account. "
                                                "Try again in %(minutes)s minutes.", minutes=minutes))
    if not user.check_password(password):
        _count_login_failure(user, moment)
        return None
    if user.login_failures or user.login_locked_until is not None:
        user.login_failures, user.login_locked_until = 0, None
        db.session.flush()
    return user if user.is_active else None


def _count_login_failure(user: User, moment: datetime) -> None:
    # One UPDATE adds the failure, so failures racing each other are all counted.
    db.session.execute(
        update(User).where(User.id == user.id).values(login_failures=User.login_failures + 1)
    )
    db.session.refresh(user)
    if user.login_failures >= LOGIN_MAX_FAILURES:
        user.login_failures, user.login_locked_until = 0, moment + LOGIN_LOCKOUT
        log.warning("user %s locked after %s wrong passwords", user.id, LOGIN_MAX_FAILURES)
    db.session.flush()


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user_id: int, name: str) -> str:
    """Create an API token and return it: the only time its secret is shown."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.session.add(
        ApiToken(
            user_id=user_id,
            name=name.strip()[:80] or "token",
            prefix=token[:10],
            token_hash=_hash_token(token),
            created_at=now(),
        )
    )
    db.session.flush()
    return token


def revoke_token(user_id: int, token_id: int) -> bool:
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != user_id or token.revoked_at is not None:
        return False
    token.revoked_at = now()
    db.session.flush()
    return True


def user_for_token(token: str) -> User | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash_token(token)))
    if row is None or row.revoked_at is not None or not row.user.is_active:
        return None
    return row.user


def active_tokens(user_id: int) -> list[ApiToken]:
    return list(
        db.session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.id)
        )
    )


def user_count() -> int:
    return db.session.scalar(select(func.count(User.id))) or 0


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16), method=PASSWORD_HASH_METHOD)


def another_admins_subject(user_id: int, staff_id: int, action: str) -> User:
    """The user an admin will ``action`` (e.g. "change the role of"): a decision no
    one takes about their own account. AccountError if the actor is not an admin, is
    that user, or the user does not exist."""
    actor = db.session.get(User, staff_id)
    if actor is None or actor.role != "admin":
        raise AccountError("forbidden", f"Only an admin may {action} a user.")
    if user_id == staff_id:
        raise AccountError("own_account", f"Ask another admin to {action} your account.")
    user = db.session.get(User, user_id)
    if user is None:
        raise AccountError("user_not_found", "No such user.")
    return user


def change_role(user_id: int, role: str, staff_id: int, reason: str) -> None:
    """An admin gives a user another role; audited with the reason.

    Refuses (AccountError) an unknown role, a non-admin actor, and an admin changing
    their own role, so the last admin cannot lock everyone out by a slip.
    """
    text = " ".join((reason or "").split())
    if not text:
        raise AccountError("reason_required", "Please give a reason.")
    if role not in ROLES:
        raise AccountError("invalid_role", f"role must be one of {', '.join(ROLES)}")
    user = another_admins_subject(user_id, staff_id, "change the role of")
    before = {"role": user.role}
    if user.role == role:
        raise AccountError("same_role", f"This user already has the role {role}.")
    user.role = role
    db.session.flush()
    record(staff_id, "user.role_change", "user", user.id, text, before, {"role": role})
