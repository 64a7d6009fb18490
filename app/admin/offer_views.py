"""Bundles and membership plans: what is sold besides single courses. Staff create and
edit them through audited services (app/bundles/staff.py, app/membership/staff.py); the
months' membership pools are shown as they were shared out, never edited."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_admin.form import BaseForm
from flask_login import current_user
from wtforms import BooleanField, DecimalField, IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from app.admin.base import ReadOnlyModelView
from app.admin.catalog_views import ServiceEditView
from app.admin.formatting import formatters
from app.admin.forms import FormValueError, _fen, reason_field
from app.bundles.staff import BundleEditError, BundleValues, save_bundle
from app.membership.staff import PlanEditError, PlanValues, save_plan
from app.money import format_yuan


class BundleForm(BaseForm):
    slug = StringField("Slug", validators=[DataRequired(), Length(max=80)])
    title_zh = StringField("Title (zh)", validators=[DataRequired(), Length(max=120)])
    title_en = StringField("Title (en)", validators=[DataRequired(), Length(max=120)])
    price_yuan = StringField("Price (yuan)", validators=[DataRequired()],
                             description="Shared between the courses by their list prices.")
    course_slugs = TextAreaField("Courses", validators=[DataRequired()],
                                 description="Course slugs, separated by commas or new lines.")
    is_published = BooleanField("Published", default=True)
    reason = reason_field()

    def to_values(self) -> BundleValues:
        slugs = tuple(part.strip() for part in (self.course_slugs.data or "").replace("\n", ",").split(",")
                      if part.strip())
        return BundleValues(
            slug=(self.slug.data or "").strip(), title_zh=self.title_zh.data or "", title_en=self.title_en.data or "",
            price_fen=_fen(self.price_yuan.data, "price_yuan") or 0, course_slugs=slugs,
            is_published=bool(self.is_published.data),
        )

    def prefill(self, bundle: Any) -> None:
        self.price_yuan.data = format_yuan(bundle.price_fen)
        self.course_slugs.data = ", ".join(course.slug for course in bundle.courses)


class PlanForm(BaseForm):
    title_zh = StringField("Title (zh)", validators=[DataRequired(), Length(max=120)])
    title_en = StringField("Title (en)", validators=[DataRequired(), Length(max=120)])
    price_yuan = StringField("Price (yuan)", validators=[DataRequired()])
    period_days = IntegerField("Period (days)", validators=[InputRequired(), NumberRange(min=1)])
    pool_percent = DecimalField("Instructor pool (% of price net of tax)", places=2,
                                validators=[InputRequired(), NumberRange(0, 100)])
    is_active = BooleanField("On sale", default=True)
    reason = reason_field()

    def to_values(self) -> PlanValues:
        bps = (self.pool_percent.data or 0) * 100
        if bps != bps.to_integral_value():
            raise FormValueError("pool_percent", "Use at most two decimals.")
        return PlanValues(
            title_zh=self.title_zh.data or "", title_en=self.title_en.data or "",
            price_fen=_fen(self.price_yuan.data, "price_yuan") or 0, period_days=self.period_days.data or 0,
            pool_bps=int(bps), is_active=bool(self.is_active.data),
        )

    def prefill(self, plan: Any) -> None:
        self.price_yuan.data = format_yuan(plan.price_fen)
        self.pool_percent.data = Decimal(plan.pool_bps) / 100


class BundleView(ServiceEditView):
    allow_create = True
    allow_edit = True
    form = BundleForm
    service_errors = (BundleEditError,)
    column_list = ("id", "slug", "title_zh", "title_en", "price_fen", "is_published")
    column_formatters = formatters(money=("price_fen",), times=("created_at",))
    column_searchable_list = ("slug", "title_zh", "title_en")
    column_filters = ("is_published",)

    def save(self, form: BundleForm, row_id: int | None) -> int:
        return save_bundle(row_id, form.to_values(), current_user.id, form.reason.data)


class MembershipPlanView(ServiceEditView):
    allow_create = True
    allow_edit = True
    form = PlanForm
    service_errors = (PlanEditError,)
    column_list = ("id", "title_zh", "title_en", "price_fen", "period_days", "pool_bps", "is_active")
    column_labels = {"pool_bps": "Instructor pool (bps)"}
    column_formatters = formatters(money=("price_fen",), times=("created_at",))
    column_filters = ("is_active",)

    def save(self, form: PlanForm, row_id: int | None) -> int:
        return save_plan(row_id, form.to_values(), current_user.id, form.reason.data)


class MembershipPoolView(ReadOnlyModelView):
    """Each month's pool as it was shared: its amount, the lesson opens it was shared by,
    and, for a month without opens, that it stayed with the platform."""

    column_list = ("period", "pool_fen", "opens", "memo", "entry_id", "allocated_at")
    column_formatters = formatters(money=("pool_fen",), times=("allocated_at",))
    column_default_sort = ("period", True)
