"""Back-office forms.

The decision forms are FlaskForms (their own CSRF check). The model forms Flask-Admin
renders are its plain BaseForm: Flask-Admin's templates add the ``csrf_token`` input
from Flask-WTF's global ``csrf_token()``, and the app-wide CSRFProtect checks it on
every POST, so they need no CSRF of their own.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Sequence

from flask_admin.form import BaseForm
from flask_wtf import FlaskForm
from wtforms import (BooleanField, DateTimeLocalField, DecimalField, HiddenField, IntegerField,
                     SelectField, StringField, TextAreaField)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from app.accounts.models import ROLES
from app.admin.services import CourseValues, InstructorValues
from app.cart.services import CouponValues
from app.earnings.rules import MAX_WEIGHT
from app.money import MoneyFormatError, format_yuan, parse_yuan
from app.timeutil import BEIJING, beijing, from_aware, now

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
    access_days = IntegerField("Days of access (empty: lifetime)", validators=[Optional(), NumberRange(min=1)])
    renewal_price_yuan = StringField("Renewal price (yuan; empty: the price)")
    is_published = BooleanField("Published")
    reason = reason_field()

    def to_values(self) -> CourseValues:
        return CourseValues(
            title_zh=self.title_zh.data or "", title_en=self.title_en.data or "",
            summary_zh=self.summary_zh.data or "", summary_en=self.summary_en.data or "",
            price_fen=_fen(self.price_yuan.data, "price_yuan") or 0,
            is_published=bool(self.is_published.data),
            access_days=self.access_days.data,
            renewal_price_fen=_fen(self.renewal_price_yuan.data, "renewal_price_yuan"),
        )

    def prefill(self, course: object) -> None:
        self.price_yuan.data = format_yuan(getattr(course, "price_fen"))
        renewal_fen = getattr(course, "renewal_price_fen")
        self.renewal_price_yuan.data = "" if renewal_fen is None else format_yuan(renewal_fen)


class InstructorForm(BaseForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=80)])
    bio_zh = TextAreaField("Bio (zh)")
    bio_en = TextAreaField("Bio (en)")
    reason = reason_field()

    def to_values(self) -> InstructorValues:
        return InstructorValues(name=self.name.data or "", bio_zh=self.bio_zh.data or "",
                                bio_en=self.bio_en.data or "")

    def prefill(self, instructor: object) -> None:
        """Every field has its model attribute's name: nothing to convert."""


class RoleForm(BaseForm):
    role = SelectField("Role", choices=[SelectChoice(role) for role in ROLES])
    reason = reason_field()

    def prefill(self, user: object) -> None:
        """The role field has the model attribute's name: nothing to convert."""


# --- Instructor earnings: commission rules, co-authors, adjustments, payouts ---------

# "12: 2", optionally followed by a note such as "(Li Xiao)"; ids and weights stay
# well inside a database integer.
AUTHOR_LINE_RE = re.compile(r"#?([0-9]{1,9})\s*[:：]\s*([0-9]{1,9})\s*(?:[(（#].*)?")
PERIOD_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"
MINUS_SIGNS = ("-", "−", "－")  # ASCII, the Unicode minus, the full-width hyphen-minus


def _optional_id(value: object) -> int | None:
    """A select's value as a row id; the blank choice is None."""
    if value is None or value == "":
        return None
    return int(str(value))


def _choices(rows: Sequence[tuple[int, str]]) -> list[SelectChoice]:
    return [SelectChoice("", "—")] + [SelectChoice(str(row_id), label) for row_id, label in rows]


def _this_minute_in_beijing() -> datetime:
    return beijing(now()).replace(tzinfo=None, second=0, microsecond=0)


@dataclass(frozen=True)
class RuleValues:
    rate_bps: int
    effective_from: datetime | None  # naive UTC; None: from this moment
    instructor_id: int | None
    course_id: int | None


class CommissionRuleForm(BaseForm):
    scope = SelectField("Applies to", choices=[
        SelectChoice("instructor", "An instructor: their default rate for all their courses"),
        SelectChoice("course", "One course: overrides its instructor's default"),
    ])
    instructor_id = SelectField("Instructor (when the rule applies to an instructor)", coerce=_optional_id,
                                choices=[SelectChoice("", "—")])
    course_id = SelectField("Course (when the rule applies to one course)", coerce=_optional_id,
                            choices=[SelectChoice("", "—")])
    percent = DecimalField(
        "Instructor share, in percent (0–100, at most two decimals)", places=2,
        validators=[InputRequired("Please give the share."), NumberRange(0, 100)],
        description="Of each order line net of tax: 70 means 70 % (7000 basis points).",
    )
    effective_from = DateTimeLocalField(
        "Takes effect (Beijing time)", format="%Y-%m-%dT%H:%M", default=_this_minute_in_beijing,
        validators=[Optional()],
        description="Now or later: orders already placed keep their rate. "
                    "Empty or the current minute: from this moment.",
    )
    reason = reason_field()

    def set_scopes(self, instructors: Sequence[tuple[int, str]], courses: Sequence[tuple[int, str]]) -> None:
        """The rows to choose from, as ``(id, label)``."""
        self.instructor_id.choices = _choices(instructors)
        self.course_id.choices = _choices(courses)

    def to_values(self) -> RuleValues:
        bps = (self.percent.data or Decimal(0)) * 100
        if bps != bps.to_integral_value():
            raise FormValueError("percent", "Use at most two decimals.")
        instructor_id = course_id = None
        if self.scope.data == "course":
            course_id = self.course_id.data
            if course_id is None:
                raise FormValueError("course_id", "Choose the course.")
        else:
            instructor_id = self.instructor_id.data
            if instructor_id is None:
                raise FormValueError("instructor_id", "Choose the instructor.")
        return RuleValues(int(bps), self._effective_from(), instructor_id, course_id)

    def _effective_from(self) -> datetime | None:
        """The field has minutes only, so the current minute means "from this moment"
        rather than the few seconds of it that have already passed."""
        chosen = self.effective_from.data
        if chosen is None or chosen == _this_minute_in_beijing():
            return None
        return beijing_to_utc(chosen)


class CourseAuthorsForm(FlaskForm):
    authors = TextAreaField(
        "Authors and weights: one line per author, written “instructor id: weight”",
        validators=[DataRequired("List the authors, at least the course's own instructor.")],
        description="For example “12: 2” and “15: 1” on two lines split the instructor share 2 : 1. "
                    "Anything in brackets after the weight is a note and is ignored. "
                    "The course's own instructor must stay an author.",
    )
    reason = reason_field()

    def parsed_authors(self) -> list[tuple[int, int]]:
        """``(instructor_id, weight)`` per non-blank line; raises `FormValueError`."""
        authors = []
        for number, line in enumerate((self.authors.data or "").splitlines(), start=1):
            text = line.strip()
            if not text:
                continue
            match = AUTHOR_LINE_RE.fullmatch(text)
            if match is None:
                raise FormValueError("authors", f"Line {number}: write “instructor id: weight”, for example “12: 2”.")
            weight = int(match.group(2))
            if weight > MAX_WEIGHT:
                raise FormValueError("authors", f"Line {number}: a weight is at most {MAX_WEIGHT}.")
            authors.append((int(match.group(1)), weight))
        return authors


class AdjustmentForm(FlaskForm):
    request_key = HiddenField()  # checked by the service: one booking per rendered form
    amount_yuan = StringField(
        "Amount (yuan, signed)", validators=[DataRequired("Please give the amount.")],
        description="50.00 credits the instructor's available balance; -50.00 takes it back.",
    )
    reason = TextAreaField(
        "Reason", validators=[DataRequired("Please give a reason."), Length(max=200)],
        description="The instructor sees it on their statement; it is also written to the audit log.",
    )

    def amount_fen(self) -> int:
        """The signed amount in fen; raises `FormValueError`."""
        text = "".join((self.amount_yuan.data or "").split())
        sign = 1
        if text.startswith(MINUS_SIGNS):
            sign, text = -1, text[1:]
        elif text.startswith("+"):
            text = text[1:]
        try:
            return sign * parse_yuan(text)
        except MoneyFormatError:
            raise FormValueError("amount_yuan", "Enter signed yuan such as 50, 19.90 or -20.") from None


class PayoutBatchForm(FlaskForm):
    period = StringField("Period (YYYY-MM)", validators=[
        DataRequired("Please give the period."), Regexp(PERIOD_PATTERN, message="A month such as 2026-10."),
    ], description="The month the batch pays for, in Beijing time; it names the transfers.")
    minimum_yuan = StringField(
        "Minimum to pay (yuan)", validators=[DataRequired("Please give the minimum.")],
        description="Instructors whose available balance is below it wait for a later batch.",
    )

    def minimum_fen(self) -> int:
        return _fen(self.minimum_yuan.data, "minimum_yuan") or 0


class MarkPaidForm(FlaskForm):
    bank_reference = StringField("Bank reference", validators=[
        DataRequired("Please give the bank's reference."), Length(max=64),
    ])
