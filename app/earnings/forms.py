from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length


class BankAccountForm(FlaskForm):
    account_holder = StringField(_l("Account holder"), validators=[DataRequired(), Length(max=80)])
    bank_name = StringField(_l("Bank and branch"), validators=[DataRequired(), Length(max=80)])
    account_number = StringField(
        _l("Account number"), validators=[DataRequired(), Length(max=40)],
        render_kw={"inputmode": "numeric", "autocomplete": "off"},
    )
    # Changing where money goes is the one thing a stolen session must not do silently.
    password = PasswordField(_l("Your password"), validators=[DataRequired(), Length(max=128)])
