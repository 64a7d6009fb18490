from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.timeutil import system_now

ROLES = ("learner", "instructor", "support", "finance", "admin")
STAFF_ROLES = frozenset({"support", "finance", "admin"})

# scrypt with N=2^14, r=8, p=5: one of OWASP's equally strong scrypt settings, at 16 MiB
# a hash where werkzeug's default (N=2^15, r=8, p=1, below OWASP's minimum) takes 32 MiB.
# Every login allocates that much at once, so it sets a web worker's peak memory (bench/:
# 157 MB with the default); hashes made with other parameters still verify (they are in
# the stored string).
PASSWORD_HASH_METHOD = "scrypt:16384:8:5"


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('learner', 'instructor', 'support', 'finance', 'admin')", name="role"
        ),
        # A sealed secret is two columns or none; enrolment needs a secret.
        CheckConstraint(
            "((totp_key_id IS NULL AND totp_ciphertext IS NULL)"
            " OR (totp_key_id IS NOT NULL AND totp_ciphertext IS NOT NULL))"
            " AND (mfa_enrolled_at IS NULL OR totp_ciphertext IS NOT NULL)",
            name="totp_secret",
        ),
        CheckConstraint("session_version >= 1 AND mfa_failures >= 0", name="counters"),
        CheckConstraint("login_failures >= 0", name="login_failures"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="learner")
    is_active_account: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=system_now)
    # Staff second factor (app/accounts/mfa.py). The TOTP secret is sealed with the field
    # keyring; while mfa_enrolled_at is NULL it is only offered, not yet confirmed.
    totp_key_id: Mapped[str | None] = mapped_column(String(16))
    totp_ciphertext: Mapped[str | None] = mapped_column(String(128))
    # The time-step of the last accepted code: a code of that step or earlier is refused.
    totp_last_step: Mapped[int | None]
    mfa_enrolled_at: Mapped[datetime | None]
    mfa_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    mfa_locked_until: Mapped[datetime | None]
    # Wrong passwords in a row, and the lock they lead to (services.authenticate).
    login_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    login_locked_until: Mapped[datetime | None]
    # Part of the id Flask-Login keeps in the session: raising it ends every session.
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")

    def get_id(self) -> str:
        """What Flask-Login keeps in the session: the id and the session version, so a
        logout or a second-factor reset (which raise the version) ends every session."""
        return f"{self.id}:{self.session_version}"

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method=PASSWORD_HASH_METHOD)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive accounts
        return self.is_active_account

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def mfa_enrolled(self) -> bool:
        return self.mfa_enrolled_at is not None


class ApiToken(db.Model):
    """A bearer token for app clients. Only its SHA-256 is stored; the prefix identifies it."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=system_now)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")


class RecoveryCode(db.Model):
    """A one-time code that stands in for a TOTP code. Only its SHA-256 is stored."""

    __tablename__ = "recovery_codes"
    __table_args__ = (UniqueConstraint("user_id", "code_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=system_now)
    used_at: Mapped[datetime | None]
