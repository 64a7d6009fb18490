"""The money page's charts and tables: sales, refunds, platform revenue and instructor
earnings per Beijing day of a range and per month of the year up to it, each chart with
its CSV (`app.analytics.money_flow` says what each figure sums)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from app.analytics.chart import Chart, Series
from app.analytics.money_flow import MoneyFigures, daily_figures, monthly_figures
from app.analytics.queries import DayRange

MONTHS_SHOWN = 12
FIGURES = (
    ("Sales", "sales_fen"),
    ("Refunds", "refunds_fen"),
    ("Platform revenue", "platform_revenue_fen"),
    ("Instructor earnings", "instructor_earnings_fen"),
)
MONEY_CHART_KEYS = ("money_daily", "money_monthly")


def first_month_shown(last: date) -> date:
    """The first day of the month ``MONTHS_SHOWN - 1`` months before ``last``'s."""
    index = last.year * 12 + last.month - 1 - (MONTHS_SHOWN - 1)
    return date(index // 12, index % 12 + 1, 1)


def _chart(key: str, figures: dict[str, MoneyFigures]) -> Chart:
    labels = tuple(figures)
    series = tuple(Series(name, tuple(getattr(figures[label], field) for label in labels))
                   for name, field in FIGURES)
    if key == "money_daily":
        return Chart(key, "Money per day", "day", labels, series, "fen")
    return Chart(key, f"Money per month, the last {len(labels)}", "month", labels, series, "fen")


def _daily(days: DayRange) -> dict[str, MoneyFigures]:
    return {day.isoformat(): figures for day, figures in daily_figures(days.first, days.last).items()}


def _monthly(days: DayRange) -> dict[str, MoneyFigures]:
    return monthly_figures(first_month_shown(days.last), days.last)


@dataclass(frozen=True)
class MoneyReport:
    days: DayRange
    daily: dict[str, MoneyFigures]
    monthly: dict[str, MoneyFigures]

    @property
    def range_total(self) -> MoneyFigures:
        return sum(self.daily.values(), MoneyFigures())

    def charts(self) -> list[Chart]:
        return [_chart("money_daily", self.daily), _chart("money_monthly", self.monthly)]


def money_report(days: DayRange) -> MoneyReport:
    return MoneyReport(days, _daily(days), _monthly(days))


def money_chart(key: str, days: DayRange) -> Chart:
    """One chart's numbers (its CSV download), reading only what that chart shows."""
    if key == "money_daily":
        return _chart(key, _daily(days))
    if key == "money_monthly":
        return _chart(key, _monthly(days))
    raise KeyError(key)
