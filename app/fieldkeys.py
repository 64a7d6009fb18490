"""The app's field-encryption keyring (``FIELD_ENCRYPTION_KEY``), shared by every sealed
column: instructor bank accounts and staff second-factor secrets.

Without a configured key (development only: production refuses to start), a key is
generated once into ``KEYS_DIR`` so sealed values survive restarts.
"""
from __future__ import annotations

import os
from pathlib import Path

from flask import current_app

from app.fieldcrypto import Keyring, generate_key_entry, parse_keyring

DEV_KEY_FILE = "field_encryption.key"


def field_keyring() -> Keyring:
    cached = current_app.extensions.get("cashier.field_keyring")
    if cached is None:
        text = current_app.config.get("FIELD_ENCRYPTION_KEY") or _dev_key_text()
        cached = current_app.extensions["cashier.field_keyring"] = parse_keyring(text)
    return cached


def _dev_key_text() -> str:
    path = Path(current_app.config["KEYS_DIR"]) / DEV_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process wrote it first; read theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(generate_key_entry("dev1"))
    return path.read_text().strip()
