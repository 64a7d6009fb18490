"""Payment and refund receipts, signed with the platform's key (README.md, "Receipts").

`init_receipts` registers the blueprint and reads the receipt key once per app; in the
embedded default (no RECEIPT_PRIVATE_KEY_FILE) it first generates one into KEYS_DIR.
"""
from __future__ import annotations

from flask import Flask


def init_receipts(app: Flask) -> None:
    from app.receipts.signing import ensure_receipt_key, load_receipt_key
    from app.receipts.views import bp

    if not app.config.get("RECEIPT_PRIVATE_KEY_FILE"):
        ensure_receipt_key(app.config["KEYS_DIR"])
    app.extensions["cashier.receipt_key"] = load_receipt_key(app.config)
    app.register_blueprint(bp)
