"""The analytics charts, drawn on the server as inline SVG, and the CSV of their numbers.

A `Chart` holds the numbers once; `svg()` draws them and `csv_rows()` lists them, so the
download always says what the picture shows. Like `app.earnings.chart` (whose bar chart
is about money by month and does not fit here), the SVG has no script, no external
reference and no ``style`` attribute, so it passes our Content-Security-Policy inline.
Values are integers (basis points, seconds, orders, fen); floats are only pixel positions.
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Callable, Sequence

from app.analytics.measures import duration_text, percent_text
from app.money import display_yuan

WIDTH, HEIGHT = 720.0, 280.0
LEFT, RIGHT, TOP, BOTTOM = 84.0, 16.0, 40.0, 48.0
GRID_STEPS = 4
COLOURS = ("#2f6fb0", "#c2410c", "#15803d", "#7c3aed")
TEXT_FILL, GRID_STROKE = "#374151", "#e5e7eb"
FONT_FAMILY = "system-ui, sans-serif"
FONT = f'font-family="{FONT_FAMILY}" font-size="11"'

UNITS: dict[str, Callable[[int], str]] = {
    "basis_points": percent_text,
    "seconds": duration_text,
    "orders": str,
    "fen": display_yuan,
}


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[int | None, ...]  # one per x label; None: nothing that day


@dataclass(frozen=True)
class Chart:
    key: str  # the CSV's name and the SVG's element id
    title: str
    x_name: str
    x_labels: tuple[str, ...]
    series: tuple[Series, ...]
    unit: str  # a key of UNITS; also the CSV columns' suffix
    kind: str = "line"  # or "bar" (the first series only)

    def csv_rows(self) -> list[list[str]]:
        """A header, then one row per x label: the same integers the chart draws."""
        header = [self.x_name, *(f"{series.name} ({self.unit})" for series in self.series)]
        rows = [[label, *("" if series.values[index] is None else str(series.values[index])
                          for series in self.series)]
                for index, label in enumerate(self.x_labels)]
        return [header, *rows]

    def svg(self) -> str:
        values = [value for series in self.series for value in series.values if value is not None]
        top = _axis_top(max(values, default=0))
        low = min(0, min(values, default=0))
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" id="chart-{escape(self.key)}" role="img" '
            f'aria-labelledby="chart-{escape(self.key)}-title" viewBox="0 0 {WIDTH:g} {HEIGHT:g}" '
            f'width="100%" preserveAspectRatio="xMinYMin meet">',
            f'<title id="chart-{escape(self.key)}-title">{escape(self.title)}</title>',
            f'<text x="{LEFT:g}" y="20" font-family="{FONT_FAMILY}" font-size="14" fill="{TEXT_FILL}">'
            f'{escape(self.title)}</text>',
        ]
        parts += self._grid(low, top)
        parts += self._bars(low, top) if self.kind == "bar" else self._lines(low, top)
        parts += self._x_labels()
        parts += self._legend()
        parts.append("</svg>")
        return "".join(parts)

    # -- drawing --

    def _x(self, index: int) -> float:
        slots = max(1, len(self.x_labels))
        return LEFT + (WIDTH - LEFT - RIGHT) * (index + 0.5) / slots

    @staticmethod
    def _y(value: int, low: int, top: int) -> float:
        span = (top - low) or 1
        return TOP + (HEIGHT - TOP - BOTTOM) * (top - value) / span

    def _grid(self, low: int, top: int) -> list[str]:
        label = UNITS[self.unit]
        parts = []
        for step in range(GRID_STEPS + 1):
            value = low + (top - low) * step // GRID_STEPS
            y = self._y(value, low, top)
            parts.append(f'<line x1="{LEFT:g}" x2="{WIDTH - RIGHT:g}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="{GRID_STROKE}"/>')
            parts.append(f'<text x="{LEFT - 6:g}" y="{y + 4:.1f}" text-anchor="end" {FONT} '
                         f'fill="{TEXT_FILL}">{escape(label(value))}</text>')
        return parts

    def _lines(self, low: int, top: int) -> list[str]:
        label = UNITS[self.unit]
        parts = []
        for colour, series in zip(COLOURS, self.series):
            points = [(self._x(index), self._y(value, low, top), value, self.x_labels[index])
                      for index, value in enumerate(series.values) if value is not None]
            if len(points) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
                parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for x, y, value, day in points:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>'
                             f'{escape(series.name)} {escape(day)}: {escape(label(value))}</title></circle>')
        return parts

    def _bars(self, low: int, top: int) -> list[str]:
        label = UNITS[self.unit]
        series = self.series[0]
        width = (WIDTH - LEFT - RIGHT) / max(1, len(self.x_labels)) * 0.6
        base = self._y(0, low, top)
        parts = []
        for index, value in enumerate(series.values):
            if value is None:
                continue
            y = self._y(value, low, top)
            parts.append(f'<rect x="{self._x(index) - width / 2:.1f}" y="{min(y, base):.1f}" width="{width:.1f}" '
                         f'height="{abs(base - y):.1f}" fill="{COLOURS[0]}"><title>{escape(self.x_labels[index])}: '
                         f'{escape(label(value))}</title></rect>')
            parts.append(f'<text x="{self._x(index):.1f}" y="{min(y, base) - 4:.1f}" text-anchor="middle" {FONT} '
                         f'fill="{TEXT_FILL}">{escape(label(value))}</text>')
        return parts

    def _x_labels(self) -> list[str]:
        # At most about twelve labels, so a quarter of days stays legible.
        every = max(1, -(-len(self.x_labels) // 12))
        return [f'<text x="{self._x(index):.1f}" y="{HEIGHT - BOTTOM + 16:g}" text-anchor="middle" {FONT} '
                f'fill="{TEXT_FILL}">{escape(label)}</text>'
                for index, label in enumerate(self.x_labels) if index % every == 0]

    def _legend(self) -> list[str]:
        if self.kind == "bar" or len(self.series) < 2:
            return []
        parts, x = [], LEFT
        for colour, series in zip(COLOURS, self.series):
            parts.append(f'<rect x="{x:.1f}" y="{HEIGHT - 16:g}" width="10" height="10" fill="{colour}"/>')
            parts.append(f'<text x="{x + 14:.1f}" y="{HEIGHT - 7:g}" {FONT} fill="{TEXT_FILL}">'
                         f'{escape(series.name)}</text>')
            x += 24 + 7 * len(series.name)
        return parts


def _axis_top(highest: int) -> int:
    """A round top for the y axis at or above ``highest``: 1, 2 or 5 times a power of ten."""
    if highest <= 0:
        return 1
    magnitude = 1
    while True:
        for multiple in (1, 2, 5):
            if multiple * magnitude >= highest:
                return multiple * magnitude
        magnitude *= 10


def series_over(days: Sequence[str], values_by_day: dict[str, int | None]) -> tuple[int | None, ...]:
    """A series with one value per day, None for the days missing from ``values_by_day``."""
    return tuple(values_by_day.get(day) for day in days)
