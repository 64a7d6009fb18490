"""The pay page's status poll, answered from one SQL statement.

The pay page asks `GET /orders/<order_no>/status` every second or two while a learner
waits: the most frequent request of the site. Answered the way other pages are, it cost
three ORM reads (Flask-Login's user load, the order, its current attempt). Here one Core
statement reads the user the session names, the order if that user owns it, and the
order's current attempt, and the rules the rest of the site applies elsewhere are
applied to that row:

- who is signed in is what Flask-Login keeps in the session (`User.get_id`,
  "id:version"); an unknown user, a session of an older version (logged out since, or
  the second factor reset) and a deactivated account are nobody, as in
  `accounts.services.load_user`;
- a staff member is not signed in without the second factor on this session, as in
  `accounts.signin.needs_second_factor` (the app-wide hook that enforces it elsewhere
  leaves this endpoint to this module: `accounts.views.SELF_GUARDED_ENDPOINTS`);
- someone else's order is not found.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import session
from sqlalchemy import and_, bindparam, func, select, true

from app.accounts.models import STAFF_ROLES, User
from app.accounts.services import session_id_parts
from app.accounts.signin import second_factor_marked_for
from app.checkout.models import Order
from app.checkout.services import ORDER_NO_RE
from app.database import one_statement_connection
from app.extensions import db
from app.payments.models import PaymentAttempt

# Where Flask-Login keeps the signed-in user's `get_id()` in the session.
LOGIN_SESSION_KEY = "_user_id"

_users, _orders, _attempts = User.__table__, Order.__table__, PaymentAttempt.__table__
# `checkout.services.current_attempt`: the order's latest attempt.
_each_attempt = _attempts.alias("each_attempt")
_current_attempt_id = (
    select(func.max(_each_attempt.c.id)).where(_each_attempt.c.order_id == _orders.c.id)
    .correlate(_orders).scalar_subquery()
)
# A row when the session's user is live; its order columns are NULL when that user has
# no order of this number (an order's status never is), its attempt columns when the
# order has no attempt yet.
POLL = (
    select(
        _users.c.role, _orders.c.status, _orders.c.total_fen, _orders.c.expires_at,
        _attempts.c.id, _attempts.c.status, _attempts.c.next_query_at,
    )
    .select_from(_users)
    .outerjoin(_orders, and_(_orders.c.user_id == _users.c.id, _orders.c.order_no == bindparam("order_no")))
    .outerjoin(_attempts, _attempts.c.id == _current_attempt_id)
    .where(
        _users.c.id == bindparam("user_id"),
        _users.c.session_version == bindparam("version"),
        _users.c.is_active_account == true(),
    )
)


@dataclass(frozen=True, slots=True)
class PolledOrder:
    """The signed-in user's order as the poll read it. It has the attributes of an
    Order that `checkout.status.order_status` reads."""

    order_no: str
    status: str
    total_fen: int
    expires_at: datetime
    attempt_id: int | None
    attempt_status: str | None
    next_query_at: datetime | None


@dataclass(frozen=True)
class Refusal:
    """A poll answered with a JSON error: HTTP status, stable code, message."""

    status: int
    code: str
    message: str


NOT_SIGNED_IN = Refusal(401, "login_required", "Log in to see this order.")
SECOND_FACTOR_REQUIRED = Refusal(401, "second_factor_required", "Pass the second factor to see this order.")
NOT_FOUND = Refusal(404, "order_not_found", "No such order.")


def poll(order_no: str) -> PolledOrder | Refusal:
    """The polled order and its current attempt, if the signed-in user owns it; else why not.

    Reads on a connection of its own, returned to the pool before this returns (on
    SQLite, its lock released), so the caller's database session starts afresh."""
    signed_in = session_id_parts(session.get(LOGIN_SESSION_KEY))
    if signed_in is None:
        return NOT_SIGNED_IN
    user_id, version = signed_in
    # Text that cannot be an order number is not looked up (PostgreSQL refuses some of
    # it, a NUL byte say); the user still is: a stale session gets 401 whatever the URL.
    wanted = order_no if ORDER_NO_RE.fullmatch(order_no) else ""
    with one_statement_connection(db.engine) as connection:
        row = connection.execute(POLL, {"order_no": wanted, "user_id": user_id, "version": version}).first()
    if row is None:
        return NOT_SIGNED_IN
    role, status, total_fen, expires_at, attempt_id, attempt_status, next_query_at = row
    if role in STAFF_ROLES and not second_factor_marked_for(f"{user_id}:{version}"):
        return SECOND_FACTOR_REQUIRED
    if status is None:
        return NOT_FOUND
    return PolledOrder(wanted, status, total_fen, expires_at, attempt_id, attempt_status, next_query_at)
