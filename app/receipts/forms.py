from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import DataRequired

# Length is judged by app/receipts/verification.py, which names it as a reason.


class VerifyForm(FlaskForm):
    """A receipt's canonical JSON and its base64 signature, pasted by anyone."""

    receipt = TextAreaField(_l("Receipt (JSON)"), validators=[DataRequired()])
    signature = TextAreaField(_l("Signature (base64)"), validators=[DataRequired()])
