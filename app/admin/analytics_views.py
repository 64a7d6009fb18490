"""Payment analytics (issue 11): success rate, fund-flow time and the funnel over a
range of Beijing days, and the money (sales, refunds, revenue, instructor earnings) per
day and month, each chart with a CSV of its numbers.

Routes (read only; `PERMISSIONS` says who may look): ``GET /admin/analytics/`` and
``GET /admin/analytics/money`` with optional ``first`` and ``last`` (``YYYY-MM-DD``,
Beijing days, both included), and ``GET /admin/analytics/csv/<key>`` (a chart's key)
with the same range.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

from flask import Response, abort, request
from flask_admin import expose

from app.admin.base import StaffView
from app.analytics.measures import FUNNEL_LABELS, duration_text, percent_text
from app.analytics.queries import DayRange
from app.analytics.money_report import MONEY_CHART_KEYS, money_chart, money_report
from app.analytics.report import CHANNEL_NAMES, CHART_KEYS, chart, chart_csv, dashboard
from app.money import display_yuan
from app.timeutil import beijing, now

DEFAULT_DAYS = 30
# A quarter at most: a day's column on the charts stays wider than its dot.
MAX_DAYS = 92
# Days the platform can have figures for: far enough either way for any real question,
# near enough that a range's arithmetic (year 1, year 9999) cannot overflow.
EARLIEST_DAY = date(2000, 1, 1)
LATEST_AHEAD = timedelta(days=366)


def requested_days() -> tuple[DayRange, list[str]]:
    """The range from the query string, with a word for the page about what was not
    usable; by default the last thirty Beijing days, today included."""
    problems: list[str] = []
    today = beijing(now()).date()

    def day(name: str, default: date) -> date:
        text = request.args.get(name) or ""
        if not text:
            return default
        try:
            asked = date.fromisoformat(text)
        except ValueError:
            problems.append(f"{name} {text[:20]!r} is not a day (YYYY-MM-DD): using {default.isoformat()}.")
            return default
        if not EARLIEST_DAY <= asked <= today + LATEST_AHEAD:
            problems.append(f"{name} {asked.isoformat()} is outside {EARLIEST_DAY.isoformat()} to a year from "
                            f"today: using {default.isoformat()}.")
            return default
        return asked

    last = day("last", today)
    first = day("first", last - timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        problems.append("The first day is after the last: showing the last day alone.")
        first = last
    if (last - first).days + 1 > MAX_DAYS:
        problems.append(f"At most {MAX_DAYS} days at once: showing the last {MAX_DAYS}.")
        first = last - timedelta(days=MAX_DAYS - 1)
    return DayRange(first, last), problems


def _to_the_second(moment: datetime | None) -> str:
    # A timeline's steps are often seconds apart; the usual "beijing" filter stops at minutes.
    return "—" if moment is None else beijing(moment).strftime("%Y-%m-%d %H:%M:%S")


class AnalyticsView(StaffView):
    @expose("/")
    def index(self) -> str:
        days, problems = requested_days()
        return self.render(
            "admin/analytics.html", report=dashboard(days), problems=problems,
            percent=percent_text, duration=duration_text, funnel_labels=FUNNEL_LABELS,
            channel_names=CHANNEL_NAMES, when=_to_the_second,
        )

    @expose("/money")
    def money(self) -> str:
        days, problems = requested_days()
        return self.render("admin/analytics_money.html", report=money_report(days), problems=problems,
                           yuan=display_yuan)

    @expose("/csv/<key>")
    def csv_file(self, key: str) -> Response:
        days, _problems = requested_days()
        if key in CHART_KEYS:
            body = chart_csv(chart(key, days))
        elif key in MONEY_CHART_KEYS:
            body = chart_csv(money_chart(key, days))
        else:
            abort(404)
        filename = f"{key}_{days.first.isoformat()}_{days.last.isoformat()}.csv"
        response = Response(body, content_type="text/csv; charset=utf-8")
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        response.headers["Cache-Control"] = "no-store"
        return response
