"""The emulator's one blueprint; ``alipay_api`` and ``sandbox`` attach their views to it."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("gateway", __name__, url_prefix="/gateway")
