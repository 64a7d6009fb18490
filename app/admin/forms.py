"""Back-office forms.

The decision forms are FlaskForms (their own CSRF check). The model forms Flask-Admin
renders are its plain BaseForm: Flask-Admin's templates add the ``csrf_token`` input
from Flask-WTF's global ``csrf_token()``, and the app-wide CSRFProtect checks it on
every POST, so they need no CSRF of their own.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from flask_admin.form import BaseForm
from flask_wtf import FlaskForm
from wtforms import (BooleanField, DateTimeLocalField, DecimalField, HiddenField, IntegerField,
                     SelectField, StringField, TextAreaField)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from app.accounts.models import ROLES
from app.admin.services import CourseValues, InstructorValues
from app.cart.services import CouponValues
from app.money import MoneyFormatError, format_yuan, parse_yuan
from app.timeutil import BEIJING, beijing, from_aware

REASON_HELP = "Why: it is written to the audit log."


def reason_field() -> TextAreaField:
    return TextAreaField("Reason", validators=[DataRequired("Please give a reason."), Length(max=255)],
                         description=REASON_HELP)


class ReasonForm(FlaskForm):
    """A decision button with the reason the staff member typed."""

    reason = reason_field()


class RequeueForm(ReasonForm):
    queue = HiddenField(validators=[DataRequired()])
    job_id = HiddenField(validators=[DataRequired()])


class FormValueError(ValueError):
    """Form input that does not convert; ``field`` names where to show it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _fen(text: str | None, field: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return parse_yuan(text)
    except MoneyFormatError:
        raise FormValueError(field, "Enter yuan such as 20 or 19.90.") from None


def beijing_to_utc(moment: datetime | None) -> datetime | None:
    """A Beijing wall-clock time from a form as naive UTC for storage."""
    return None if moment is None else from_aware(moment.replace(tzinfo=BEIJING))


def utc_to_beijing(moment: datetime | None) -> datetime | None:
    return None if moment is None else beijing(moment).replace(tzinfo=None)


class CouponForm(BaseForm):
    code = StringField("Code", validators=[DataRequired(), Length(min=3, max=40)],
                       description="Stored in upper case.")
    kind = SelectField("Kind", choices=[SelectChoice("percent", "Percent off"), SelectChoice("fixed", "Fixed amount off")])
    percent = DecimalField("Percent off (1–100)", places=2, validators=[Optional(), NumberRange(1, 100)])
    amount_yuan = StringField("Amount off (yuan)", validators=[Optional()])
    starts_at = DateTimeLocalField("Valid from (Beijing time)", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    ends_at = DateTimeLocalField("Valid until (Beijing time)", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    min_amount_yuan = StringField("Minimum order (yuan)", default="0")
    max_redemptions = IntegerField("Total uses (empty: unlimited)", validators=[Optional(), NumberRange(min=1)])
    per_user_limit = IntegerField("Uses per learner", default=1, validators=[InputRequired(), NumberRange(min=1)])
    is_active = BooleanField("Active", default=True)
    reason = reason_field()

    def to_values(self) -> CouponValues:
        percent_bps = None
        if self.kind.data == "percent" and self.percent.data is not None:
            bps = self.percent.data * 100
            if bps != bps.to_integral_value():
                raise FormValueError("percent", "Use at most two decimals.")
            percent_bps = int(bps)
        return CouponValues(
            code=self.code.data or "",
            kind=self.kind.data,
            percent_off_bps=percent_bps,
            amount_off_fen=_fen(self.amount_yuan.data, "amount_yuan") if self.kind.data == "fixed" else None,
            starts_at=beijing_to_utc(self.starts_at.data),
            ends_at=beijing_to_utc(self.ends_at.data),
            min_amount_fen=_fen(self.min_amount_yuan.data, "min_amount_yuan") or 0,
            max_redemptions=self.max_redemptions.data,
            per_user_limit=self.per_user_limit.data or 0,
            is_active=bool(self.is_active.data),
        )

    def prefill(self, coupon: object) -> None:
        percent = getattr(coupon, "percent_off_bps")
        amount = getattr(coupon, "amount_off_fen")
        self.percent.data = None if percent is None else Decimal(percent) / 100
        self.amount_yuan.data = "" if amount is None else format_yuan(amount)
        self.starts_at.data = utc_to_beijing(getattr(coupon, "starts_at"))
        self.ends_at.data = utc_to_beijing(getattr(coupon, "ends_at"))
        self.min_amount_yuan.data = format_yuan(getattr(coupon, "min_amount_fen"))


class CourseForm(BaseForm):
    title_zh = StringField("Title (zh)", validators=[DataRequired(), Length(max=120)])
    title_en = StringField("Title (en)", validators=[DataRequired(), Length(max=120)])
    summary_zh = TextAreaField("Summary (zh)")
    summary_en = TextAreaField("Summary (en)")
    price_yuan = StringField("Price (yuan)", validators=[DataRequired()])
    commission_bps = IntegerField("Commission (basis points; empty: the instructor's rate)",
                                  validators=[Optional(), NumberRange(0, 10000)])
    is_published = BooleanField("Published")
    reason = reason_field()

    def to_values(self) -> CourseValues:
        return CourseValues(
            title_zh=self.title_zh.data or "", title_en=self.title_en.data or "",
            summary_zh=self.summary_zh.data or "", summary_en=self.summary_en.data or "",
            price_fen=_fen(self.price_yuan.data, "price_yuan") or 0,
            commission_bps=self.commission_bps.data, is_published=bool(self.is_published.data),
        )

    def prefill(self, course: object) -> None:
        self.price_yuan.data = format_yuan(getattr(course, "price_fen"))


class InstructorForm(BaseForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=80)])
    bio_zh = TextAreaField("Bio (zh)")
    bio_en = TextAreaField("Bio (en)")
    commission_bps = IntegerField("Commission (basis points)", validators=[InputRequired(), NumberRange(0, 10000)])
    reason = reason_field()

    def to_values(self) -> InstructorValues:
        return InstructorValues(name=self.name.data or "", bio_zh=self.bio_zh.data or "",
                                bio_en=self.bio_en.data or "", commission_bps=self.commission_bps.data)

    def prefill(self, instructor: object) -> None:
        """Every field has its model attribute's name: nothing to convert."""


class RoleForm(BaseForm):
    role = SelectField("Role", choices=[SelectChoice(role) for role in ROLES])
    reason = reason_field()

    def prefill(self, user: object) -> None:
        """The role field has the model attribute's name: nothing to convert."""
