from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length


class EmptyForm(FlaskForm):
    """A button-only POST: it still carries and checks the CSRF token."""


class RegisterForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Email(), Length(max=254)])
    display_name = StringField(_l("Name"), validators=[Length(max=80)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(min=8, max=128)])
    confirm = PasswordField(
        _l("Repeat password"), validators=[DataRequired(), EqualTo("password", _l("Passwords differ."))]
    )


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])
    next = HiddenField()


class TokenForm(FlaskForm):
    name = StringField(_l("Token name"), validators=[DataRequired(), Length(max=80)])


class SecondFactorForm(FlaskForm):
    """A code from the authenticator app or, on the verify page, a recovery code."""

    code = StringField(_l("Code"), validators=[DataRequired(_l("Enter a code.")), Length(max=64)])
    next = HiddenField()
