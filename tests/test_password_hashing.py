"""Passwords are stored with the scrypt setting chosen for memory (app/accounts/models.py),
and hashes made before that choice still sign in."""
from __future__ import annotations

from werkzeug.security import generate_password_hash

from app.accounts import services
from app.accounts.models import PASSWORD_HASH_METHOD, User
from app.extensions import db


def test_a_new_password_is_hashed_with_the_chosen_scrypt_setting(app):
    with app.app_context():
        user_id = services.create_user("hash@example.com", "correct-horse-battery")
        stored = db.session.get(User, user_id).password_hash
    method, salt, digest = stored.split("$")
    assert method == PASSWORD_HASH_METHOD == "scrypt:16384:8:5"
    assert len(salt) >= 16 and len(digest) == 128  # a 64-byte key, hex


def test_a_hash_made_with_the_library_default_still_signs_in(app):
    with app.app_context():
        user_id = services.create_user("old@example.com", "placeholder-password")
        user = db.session.get(User, user_id)
        user.password_hash = generate_password_hash("correct-horse-battery")  # scrypt:32768:8:1
        db.session.commit()
        assert user.password_hash.startswith("scrypt:32768:8:1$")
        assert services.authenticate("old@example.com", "correct-horse-battery") is not None
        assert services.authenticate("old@example.com", "wrong-horse-battery") is None
