"""Staff second factor: TOTP codes (RFC 6238, by pyotp) and one-time recovery codes.

Only staff (support, finance, admin) enrol; learners and instructors never do. The TOTP
secret is sealed with the field keyring, bound to ``user:<id>:totp_secret``. It is first
offered (the enrolment page shows it) and kept once a code from it is confirmed; then ten
recovery codes are made and shown once.

Each accepted code moves the user's last accepted time-step forward, and a code of that
step or an earlier one is refused, so a code seen once cannot be used again (the update
is conditional, so two requests racing with one code cannot both pass). Five wrong codes
in a row lock the second factor for fifteen minutes.

Flushes, never commits. Nothing here logs or records a secret or a code.
"""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, or_, select, update

from app.accounts.models import RecoveryCode, User
from app.accounts.services import AccountError, another_admins_subject, end_sessions
from app.audit.services import record
from app.extensions import db
from app.fieldcrypto import FieldDecryptError, SealedField
from app.fieldkeys import field_keyring
from app.timeutil import as_aware, now

ISSUER = "CourseCashier"
VALID_WINDOW = 1  # one 30-second step either side: a phone clock a little off still works
SECRET_BYTES = 20  # 160 bits, the key size RFC 4226 recommends
RECOVERY_CODE_COUNT = 10
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
TOTP_CODE_RE = re.compile(r"[0-9]{6}")
# Recovery codes: 16 symbols from 31 (no 0/o, 1/i/l, to copy from paper without
# guessing): 31**16 is about 2**79, drawn with `secrets`.
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
RECOVERY_CODE_LENGTH = 16
_RECOVERY_SEPARATORS_RE = re.compile(r"[\s\-]+")

WRONG_CODE = _l("That code is not right. Enter the current code from your app, or a recovery code.")


@dataclass(frozen=True)
class CodeCheck:
    """What came of one code typed on the verify page. A refusal's ``message`` is lazy,
    like `AccountError`'s: translated when the page shows it."""

    accepted: bool
    method: str | None = None  # "totp" or "recovery"
    message: str | LazyString = ""
    recovery_codes_left: int = 0


def context_for(user_id: int) -> str:
    """Bound into the sealed secret, so a ciphertext copied onto another user won't open."""
    return f"user:{user_id}:totp_secret"


def may_enrol(user: User) -> bool:
    return user.is_staff


def offered_secret(user_id: int) -> str:
    """The secret to enrol with: the one already offered (a reload shows the same QR
    code the phone may have scanned), or a new one."""
    user = _staff_user(user_id)
    if user.mfa_enrolled:
        raise AccountError("already_enrolled", _l("Your second factor is already set up."))
    if user.totp_ciphertext is not None:
        return _open_secret(user)
    secret = base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")
    _seal_secret(user, secret)
    db.session.flush()
    return secret


def provisioning_uri(user: User, secret: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def confirm_enrolment(user_id: int, code: str) -> list[str]:
    """Keep the offered secret once ``code`` comes from it; returns the new recovery
    codes, the only time they exist in clear. Audited."""
    user = _staff_user(user_id)
    if user.mfa_enrolled:
        raise AccountError("already_enrolled", _l("Your second factor is already set up."))
    if user.totp_ciphertext is None:
        raise AccountError("no_secret", _l("Open the set-up page again to get a QR code."))
    text = "".join(code.split())
    if not TOTP_CODE_RE.fullmatch(text) or not _accept_totp(user, text):
        raise AccountError("wrong_code", _l("That code is not right. Check that your phone's clock "
                                            "is set automatically, and enter the current code."))
    codes = _replace_recovery_codes(user.id)
    user.mfa_enrolled_at = now()
    user.mfa_failures, user.mfa_locked_until = 0, None
    db.session.flush()
    record(user.id, "user.mfa_enrol", "user", user.id, "second factor set up",
           {"enrolled": False}, {"enrolled": True, "recovery_codes_left": len(codes)})
    return codes


def verify_second_factor(user_id: int, code: str) -> CodeCheck:
    """Check a TOTP code or an unused recovery code (which is then used up).

    A wrong code counts towards the lock; while locked, no code is even checked. The
    caller commits in every case, so the count and the last step are kept.
    """
    user = _staff_user(user_id)
    if not user.mfa_enrolled:
        raise AccountError("not_enrolled", _l("Set up your second factor first."))
    moment = now()
    if user.mfa_locked_until is not None and user.mfa_locked_until > moment:
        minutes = max(1, int((user.mfa_locked_until - moment).total_seconds() + 59) // 60)
        return CodeCheck(False, message=_l("Too many wrong codes. Try again in %(minutes)s minutes.",
                                           minutes=minutes))
    text = "".join(code.split())
    method: str | None = None
    if TOTP_CODE_RE.fullmatch(text):
        method = "totp" if _accept_totp(user, text) else None
    elif _use_recovery_code(user.id, text, moment):
        method = "recovery"
    if method is None:
        _count_failure(user, moment)
        return CodeCheck(False, message=WRONG_CODE)
    user.mfa_failures, user.mfa_locked_until = 0, None
    db.session.flush()
    left = recovery_codes_left(user.id)
    if method == "recovery":
        record(user.id, "user.mfa_recovery_code", "user", user.id, "signed in with a recovery code",
               None, {"recovery_codes_left": left})
    return CodeCheck(True, method, recovery_codes_left=left)


def reset_second_factor(user_id: int, staff_id: int | None, reason: str) -> None:
    """An admin removes another staff member's second factor (a lost phone): the secret
    and recovery codes go, their sessions end, and they set it up again at their next
    login. Audited with the reason; never for oneself.

    ``staff_id`` None is an operator at the command line (`flask users
    reset-second-factor`), for when no other admin can: audited as the system.
    """
    text = " ".join((reason or "").split())
    if not text:
        raise AccountError("reason_required", "Please give a reason.")
    if staff_id is not None:
        user = another_admins_subject(user_id, staff_id, "reset the second factor of")
    else:
        user = db.session.get(User, user_id)
        if user is None:
            raise AccountError("user_not_found", "No such user.")
    left = recovery_codes_left(user.id)
    if user.totp_ciphertext is None and not left:
        raise AccountError("not_enrolled", "This user has no second factor to reset.")
    before = {"enrolled_at": user.mfa_enrolled_at, "recovery_codes_left": left}
    user.totp_key_id = user.totp_ciphertext = None
    user.totp_last_step = user.mfa_enrolled_at = user.mfa_locked_until = None
    user.mfa_failures = 0
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.flush()
    end_sessions(user.id)
    record(staff_id, "user.mfa_reset", "user", user.id, text, before,
           {"enrolled_at": None, "recovery_codes_left": 0})


def recovery_codes_left(user_id: int) -> int:
    return db.session.scalar(
        select(func.count(RecoveryCode.id))
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    ) or 0


def rotate_totp_secrets() -> int:
    """Re-seal every second-factor secret under the current key; returns how many changed."""
    keyring = field_keyring()
    changed = 0
    for user in db.session.scalars(select(User).where(User.totp_ciphertext.is_not(None))):
        sealed = SealedField(user.totp_key_id or "", user.totp_ciphertext or "")
        if keyring.needs_rotation(sealed):
            fresh = keyring.rotate(sealed, context_for(user.id))
            user.totp_key_id, user.totp_ciphertext = fresh.key_id, fresh.ciphertext
            changed += 1
    db.session.flush()
    return changed


def normalize_recovery_code(text: str) -> str | None:
    """A recovery code as typed (any case, with or without dashes and spaces) as stored
    before hashing, or None when it cannot be one."""
    code = _RECOVERY_SEPARATORS_RE.sub("", text).lower()
    if len(code) != RECOVERY_CODE_LENGTH or any(ch not in RECOVERY_ALPHABET for ch in code):
        return None
    return code


def hash_recovery_code(code: str) -> str:
    # SHA-256, not a slow password hash: each code carries about 79 random bits, so a
    # leaked hash cannot be reversed by guessing (a password can, which is why passwords
    # get a slow hash), and checking a code stays one cheap lookup.
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def _staff_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None or not may_enrol(user):
        raise AccountError("not_staff", _l("Only staff accounts use a second factor."))
    return user


def _seal_secret(user: User, secret: str) -> None:
    sealed = field_keyring().encrypt(secret, context_for(user.id))
    user.totp_key_id, user.totp_ciphertext = sealed.key_id, sealed.ciphertext


def _open_secret(user: User) -> str:
    sealed = SealedField(user.totp_key_id or "", user.totp_ciphertext or "")
    try:
        return field_keyring().decrypt(sealed, context_for(user.id))
    except FieldDecryptError:
        raise AccountError("key_missing", _l("Your second factor cannot be checked right now "
                                             "(its encryption key is missing). Ask an admin.")) from None


def _accept_totp(user: User, code: str) -> bool:
    """Whether ``code`` is from a step within the window and later than the last one accepted."""
    totp = pyotp.TOTP(_open_secret(user))
    try:
        step = totp.verify_and_get_timecode(code, for_time=as_aware(now()), valid_window=VALID_WINDOW)
    except pyotp.OTPVerificationError:
        return False
    moved = db.session.execute(
        update(User)
        .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
    )
    return moved.rowcount == 1


def _use_recovery_code(user_id: int, text: str, moment: datetime) -> bool:
    code = normalize_recovery_code(text)
    if code is None:
        return False
    used = db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.code_hash == hash_recovery_code(code),
               RecoveryCode.used_at.is_(None))
        .values(used_at=moment)
    )
    return used.rowcount == 1


def _count_failure(user: User, moment: datetime) -> None:
    db.session.execute(
        update(User).where(User.id == user.id).values(mfa_failures=User.mfa_failures + 1)
    )
    db.session.refresh(user)
    if user.mfa_failures >= MAX_FAILURES:
        user.mfa_failures, user.mfa_locked_until = 0, moment + LOCKOUT
    db.session.flush()


def _replace_recovery_codes(user_id: int) -> list[str]:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        code = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
        db.session.add(RecoveryCode(user_id=user_id, code_hash=hash_recovery_code(code), created_at=now()))
        codes.append("-".join(code[i:i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4)))
    db.session.flush()
    return codes
