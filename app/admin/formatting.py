"""Column formatters and list filters shared by the back-office views.

Times are stored as naive UTC and shown, and filtered by day, in Beijing time; money
is stored in fen and shown in yuan.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, Callable

from flask import g, url_for
from flask_admin.contrib.sqla.filters import BaseSQLAFilter
from flask_admin.model import filters
from markupsafe import Markup
from sqlalchemy import select

from app.accounts.models import User
from app.checkout.models import Order
from app.extensions import db
from app.money import display_yuan
from app.timeutil import BEIJING, beijing, from_aware

Formatter = Callable[[Any, Any, Any, str], Any]


def yuan(_view: Any, _context: Any, row: Any, name: str) -> str:
    amount = getattr(row, name)
    return "" if amount is None else display_yuan(amount)


def beijing_time(_view: Any, _context: Any, row: Any, name: str) -> str:
    moment = getattr(row, name)
    return "" if moment is None else beijing(moment).strftime("%Y-%m-%d %H:%M:%S")


def _page_row(context: Any, row: Any, name: str, model: type) -> Any:
    """The ``model`` row that column ``name`` of ``row`` points at. On the first call
    for a list page, every such row of the page is loaded in one query and kept for the
    request (not 50 queries a page, one per row)."""
    key = getattr(row, name)
    if key is None:
        return None
    cache = g.setdefault("admin_page_rows", {}).setdefault((model, name), {})
    if key not in cache:
        page = context.get("data") if hasattr(context, "get") else None
        keys = ({getattr(each, name) for each in page or ()} | {key}) - {None} - cache.keys()
        cache.update({found.id: found for found in db.session.scalars(select(model).where(model.id.in_(keys)))})
        cache.setdefault(key, None)
    return cache[key]


def user_email(_view: Any, context: Any, row: Any, name: str) -> str:
    user = _page_row(context, row, name, User)
    return "" if user is None else user.email


def order_link(_view: Any, context: Any, row: Any, name: str) -> Markup | str:
    """The order number, linked to the order's detail page."""
    order = _page_row(context, row, name, Order)
    if order is None:
        return ""
    return Markup('<a href="{}">{}</a>').format(url_for("order.detail", row_id=order.id), order.order_no)


def formatters(money: tuple[str, ...] = (), times: tuple[str, ...] = (),
               users: tuple[str, ...] = (), orders: tuple[str, ...] = ()) -> dict[str, Formatter]:
    table: dict[str, Formatter] = {name: order_link for name in orders}
    table.update({name: yuan for name in money})
    table.update({name: beijing_time for name in times})
    table.update({name: user_email for name in users})
    return table


def beijing_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The naive-UTC interval [start, end) of one Beijing calendar day."""
    start = from_aware(datetime.combine(day, time(), tzinfo=BEIJING))
    return start, start + timedelta(days=1)


class BeijingDayFilter(BaseSQLAFilter, filters.BaseDateFilter):
    """Rows whose timestamp falls on a Beijing calendar day."""

    def apply(self, query: Any, value: date, alias: Any = None) -> Any:
        start, end = beijing_day_bounds(value)
        column = self.get_column(alias)
        return query.filter(column >= start, column < end)

    def operation(self) -> str:
        return "on (Beijing day)"


class UserEmailFilter(BaseSQLAFilter):
    """Rows whose user column points at a user whose e-mail contains the text."""

    def apply(self, query: Any, value: str, alias: Any = None) -> Any:
        matching = select(User.id).where(User.email.ilike(f"%{value.strip().lower()}%"))
        return query.filter(self.get_column(alias).in_(matching))

    def operation(self) -> str:
        return "e-mail contains"
