"""Who is signed in on this browser, and, for staff, whether the second factor was checked.

Logging in rotates the session: it is emptied before Flask-Login writes the user into
it, so nothing put into a session before login (a fixated cookie) carries over.
Logging out raises the user's session version (`User.get_id`), so a copy of the cookie
taken before stops working too (on every browser: logging out ends all of them).

A staff session is password-only until the second factor is checked on it. The mark
then stored names the session's user id and version, the time, and a fingerprint of
the browser (user agent and address). It lapses after `VERIFIED_FOR`, or when the
fingerprint changes: a staff cookie replayed from elsewhere must pass the second
factor again. This is Flask-Login's "strong" session protection applied to staff only:
strong protection for everyone would log learners out whenever a mobile carrier's
NAT gives them a new address.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from flask import request, session, url_for
from flask_login import current_user, login_user, logout_user

from app.accounts.models import User
from app.accounts.services import end_sessions
from app.timeutil import now

SECOND_FACTOR_KEY = "second_factor"
VERIFIED_FOR = timedelta(hours=12)


def begin(user: User) -> None:
    """Log ``user`` in on a fresh session."""
    session.clear()
    login_user(user)


def end() -> None:
    """Log out here and end the user's other sessions; the caller commits."""
    user_id = current_user.id if current_user.is_authenticated else None
    logout_user()
    session.clear()
    if user_id is not None:
        end_sessions(user_id)


def client_fingerprint() -> str:
    seen = f"{request.remote_addr or ''}\n{request.user_agent.string}"
    return hashlib.sha256(seen.encode("utf-8", "replace")).hexdigest()[:32]


def mark_second_factor() -> None:
    """The signed-in staff member passed the second factor on this session, now."""
    session[SECOND_FACTOR_KEY] = {
        "user": current_user.get_id(),
        "at": now().isoformat(),
        "client": client_fingerprint(),
    }


def second_factor_verified() -> bool:
    """Whether the signed-in user passed the second factor on this session, recently
    enough and from this browser."""
    return current_user.is_authenticated and second_factor_marked_for(current_user.get_id())


def second_factor_marked_for(session_id: str) -> bool:
    """Whether this session carries a live second-factor mark for ``session_id`` (what
    `User.get_id` gives: the mark of an older session version does not count). For a
    caller that has checked who is signed in without loading the user (the status poll)."""
    mark = session.get(SECOND_FACTOR_KEY)
    if not isinstance(mark, dict) or mark.get("user") != session_id:
        return False
    try:
        verified_at = datetime.fromisoformat(str(mark.get("at")))
    except ValueError:
        return False
    return now() - verified_at < VERIFIED_FOR and mark.get("client") == client_fingerprint()


def needs_second_factor() -> bool:
    """A staff member signed in with the password only (or whose mark lapsed)."""
    return current_user.is_authenticated and current_user.is_staff and not second_factor_verified()


def second_factor_url(target: str | None = None) -> str:
    """Where the signed-in staff member passes the second factor (or sets it up first),
    coming back to ``target`` (a local path) afterwards."""
    endpoint = ("accounts.verify_second_factor" if current_user.mfa_enrolled
                else "accounts.enrol_second_factor")
    return url_for(endpoint, next=target) if target else url_for(endpoint)
