"""The payment analytics page's numbers: charts (each with its CSV) and tables, built
from `app.analytics.queries` for one range of Beijing days."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Callable

from app.analytics.chart import Chart, Series, series_over
from app.analytics.measures import FUNNEL_LABELS, FunnelStep, SuccessRate, trend
from app.analytics.queries import DayRange, FundFlowRow, SlowPayment, funnel_of, rates_by_channel, rates_by_day
# The same answers as `queries`, read from the daily rollup where a day has one.
from app.analytics.rollup import fund_flow_summaries, order_outcomes, slowest_payments, success_by_course
from app.config import CHANNELS

CHANNEL_NAMES = {"alipay": "Alipay", "wechat": "WeChat Pay"}


def success_rate_chart(labels: list[str], overall: dict[str, SuccessRate],
                       by_channel: dict[str, dict[str, SuccessRate]]) -> Chart:
    series = [Series("All channels", series_over(labels, _basis_points(overall)))]
    series += [Series(CHANNEL_NAMES[channel], series_over(labels, _basis_points(by_channel[channel])))
               for channel in CHANNELS]
    return Chart("success_rate", "Payment success rate per day", "day", tuple(labels), tuple(series),
                 "basis_points")


def _fund_flow_chart(labels: list[str], rows: list[FundFlowRow], key: str, title: str,
                     pick: Callable[[FundFlowRow], int | None]) -> Chart:
    series = tuple(Series(CHANNEL_NAMES[channel],
                          series_over(labels, {row.day: pick(row) for row in rows if row.channel == channel}))
                   for channel in CHANNELS)
    return Chart(key, title, "day", tuple(labels), series, "seconds")


def fund_flow_median_chart(labels: list[str], by_day_and_channel: list[FundFlowRow]) -> Chart:
    return _fund_flow_chart(labels, by_day_and_channel, "fund_flow_median", "Fund-flow time per day, median",
                            lambda row: row.total_time.median_seconds)


def fund_flow_p95_chart(labels: list[str], by_day_and_channel: list[FundFlowRow]) -> Chart:
    return _fund_flow_chart(labels, by_day_and_channel, "fund_flow_p95",
                            "Fund-flow time per day, 95th percentile", lambda row: row.total_time.p95_seconds)


def fund_flow_split_chart(labels: list[str], by_day: list[FundFlowRow]) -> Chart:
    """Where the median time goes, every channel together: the channel's part and ours."""
    rows = {row.day: row for row in by_day}
    series = (
        Series("Channel (median)", series_over(labels, {day: row.channel_time.median_seconds
                                                        for day, row in rows.items()})),
        Series("System (median)", series_over(labels, {day: row.system_time.median_seconds
                                                       for day, row in rows.items()})),
    )
    return Chart("fund_flow_split", "Channel and system processing time per day, median", "day",
                 tuple(labels), series, "seconds")


def funnel_chart(steps: list[FunnelStep]) -> Chart:
    return Chart("funnel", "Order funnel", "step", tuple(FUNNEL_LABELS[step.step] for step in steps),
                 (Series("Orders", tuple(step.orders for step in steps)),), "orders", kind="bar")


CHART_KEYS = ("success_rate", "fund_flow_median", "fund_flow_p95", "fund_flow_split", "funnel")


def chart(key: str, days: DayRange) -> Chart:
    """One chart of the range, running only the queries it needs (its CSV download)."""
    labels = days.days()
    if key == "success_rate":
        outcomes = order_outcomes(days)
        return success_rate_chart(labels, rates_by_day(outcomes),
                                  {channel: rates_by_day(outcomes, channel) for channel in CHANNELS})
    if key in ("fund_flow_median", "fund_flow_p95"):
        build = fund_flow_median_chart if key == "fund_flow_median" else fund_flow_p95_chart
        return build(labels, fund_flow_summaries(days).by_day_and_channel)
    if key == "fund_flow_split":
        return fund_flow_split_chart(labels, fund_flow_summaries(days).by_day)
    if key == "funnel":
        return funnel_chart(funnel_of(order_outcomes(days)))
    raise KeyError(key)


def chart_csv(chart: Chart) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(chart.csv_rows())
    return out.getvalue()


@dataclass(frozen=True)
class DayRate:
    day: str
    rate: SuccessRate
    change_basis_points: int | None  # against the day before


@dataclass(frozen=True)
class Dashboard:
    days: DayRange
    charts: list[Chart]
    daily_rates: list[DayRate]
    channel_rates: dict[str, SuccessRate]
    course_rates: list[tuple[int, str, SuccessRate]]
    fund_flow_by_day: list[FundFlowRow]
    fund_flow_by_channel: list[FundFlowRow]
    funnel: list[FunnelStep]
    slowest: list[SlowPayment]


def dashboard(days: DayRange) -> Dashboard:
    """Everything on the page: past days from the daily rollup, today (and any day not
    rolled up yet) and the range-wide percentiles per channel live (app/analytics/rollup.py)."""
    labels = days.days()
    outcomes = order_outcomes(days)
    overall = rates_by_day(outcomes)
    by_channel_day = {channel: rates_by_day(outcomes, channel) for channel in CHANNELS}
    flows = fund_flow_summaries(days)
    flow_day_channel, flow_day = flows.by_day_and_channel, flows.by_day
    steps = funnel_of(outcomes)
    rates = [overall.get(day, SuccessRate(0, 0)) for day in labels]
    changes = trend([rate.basis_points for rate in rates])
    return Dashboard(
        days=days,
        charts=[
            success_rate_chart(labels, overall, by_channel_day),
            fund_flow_median_chart(labels, flow_day_channel),
            fund_flow_p95_chart(labels, flow_day_channel),
            fund_flow_split_chart(labels, flow_day),
            funnel_chart(steps),
        ],
        daily_rates=[DayRate(day, rate, change) for day, rate, change in zip(labels, rates, changes)],
        channel_rates=rates_by_channel(outcomes),
        course_rates=success_by_course(days),
        fund_flow_by_day=flow_day_channel,
        fund_flow_by_channel=flows.by_channel,
        funnel=steps,
        slowest=slowest_payments(days),
    )


def _basis_points(rates: dict[str, SuccessRate]) -> dict[str, int | None]:
    return {day: rate.basis_points for day, rate in rates.items()}
