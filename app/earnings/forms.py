from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length


class BankAccountForm(FlaskForm):
    account_holder = StringField("Account holder 户名", validators=[DataRequired(), Length(max=80)])
    bank_name = StringField("Bank and branch 开户行", validators=[DataRequired(), Length(max=80)])
    account_number = StringField(
        "Account number 银行账号", validators=[DataRequired(), Length(max=40)],
        render_kw={"inputmode": "numeric", "autocomplete": "off"},
    )
    # Changing where money goes is the one thing a stolen session must not do silently.
    password = PasswordField("Your password 登录密码", validators=[DataRequired(), Length(max=128)])
