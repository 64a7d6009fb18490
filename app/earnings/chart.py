"""An instructor's monthly earnings as a bar chart, drawn on the server as inline SVG.

The SVG is plain markup: no script, no external references, no event handlers and no
``style`` attributes (only presentation attributes such as ``fill``), so it can be
inlined under a Content-Security-Policy that allows neither inline script nor inline
style. Money stays integer fen; floats are used only for pixel positions. The same input
always gives the same string.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

SVG_NAMESPACE = "http://www.w3.org/2000/svg"

# Layout, in viewBox units.
PLOT_TOP = 44.0
PLOT_HEIGHT = 200.0
LABEL_BAND = 44.0  # below the plot: month and year labels
RIGHT_MARGIN = 16.0
MIN_PLOT_WIDTH = 480.0
MIN_SLOT_WIDTH = 36.0  # one month's column: wide enough for "Nov" at FONT_SIZE
BAR_SHARE = 0.6  # of a slot; the rest is the gap between bars
FONT_SIZE = 11
TITLE_FONT_SIZE = 15
# An upper bound on a character's advance at FONT_SIZE, to leave room for y labels.
CHAR_WIDTH = 7.0

MAX_INTERVALS = 5  # y axis gridline steps: at most this many between bottom and top
STEP_MULTIPLIERS = (1, 2, 5)
MIN_STEP_FEN = 100  # ¥1: axis labels are always whole yuan

POSITIVE_FILL = "#2f6fb0"
NEGATIVE_FILL = "#c2410c"
TEXT_FILL = "#374151"
MUTED_FILL = "#6b7280"
GRID_STROKE = "#e5e7eb"
AXIS_STROKE = "#6b7280"
FONT_FAMILY = "system-ui, sans-serif"

NO_EARNINGS_TEXT = "No earnings yet."

# English abbreviations from a fixed table, not strftime: the output must not depend on
# the server's locale.
MONTH_ABBREVIATIONS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _english_month_count(count: int) -> str:
    return f"{count} month{'s' if count != 1 else ''}"


@dataclass(frozen=True)
class ChartWords:
    """What the chart says, in one language: English unless the caller (which knows the
    reader's language; this module knows no Flask) passes other words.

    ``summary`` and ``span`` are %-templates: ``summary`` with ``months`` (from
    ``month_count``), ``span``, ``total``, ``highest_month``, ``highest``, ``lowest_month``
    and ``lowest``; ``span`` with ``first`` and ``last``.
    """

    month_labels: tuple[str, ...] = MONTH_ABBREVIATIONS  # January first
    no_earnings: str = NO_EARNINGS_TEXT
    summary: str = ("Earnings for %(months)s, %(span)s: total %(total)s; "
                    "highest %(highest_month)s %(highest)s; lowest %(lowest_month)s %(lowest)s.")
    span: str = "%(first)s to %(last)s"
    month_count: Callable[[int], str] = _english_month_count


ENGLISH = ChartWords()

_MONTH_RE = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_ELEMENT_ID_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# Characters XML 1.0 cannot carry at all, escaped or not; a title holding one would
# make the whole document unparseable.
_NOT_XML_CHAR_RE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def monthly_earnings_svg(
    months: Sequence[tuple[str, int]], title: str, *, element_id: str = "earnings-chart",
    words: ChartWords = ENGLISH,
) -> str:
    """An SVG document (for inlining in a page) with one bar per month, in the order given.

    Each item is ``("2026-11", amount_fen)``; an amount may be negative (refunds exceeded
    sales that month) and is drawn below the zero line in another colour. Each bar has a
    ``<title>`` with its month and amount in yuan. ``element_id`` prefixes the ids that
    ``aria-labelledby`` points at; give each chart on one page its own. ``words`` are the
    chart's own texts (month labels, the summary for screen readers, the empty chart's).

    Raises ValueError for a month that is not ``YYYY-MM``, a malformed ``element_id`` or
    words without twelve month labels, TypeError for an amount that is not an int. No
    months gives a small SVG saying there are no earnings yet.
    """
    if not _ELEMENT_ID_RE.fullmatch(element_id):
        raise ValueError("element_id must start with a letter and hold only A-Z, a-z, 0-9, _ and -")
    for month, amount_fen in months:
        if not isinstance(month, str) or not _MONTH_RE.fullmatch(month):
            raise ValueError(f"month must be YYYY-MM, got {month!r}")
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool):
            raise TypeError("amount_fen must be an int")
    if len(words.month_labels) != 12:
        raise ValueError("words.month_labels must name the twelve months")
    if not months:
        return _empty_svg(title, element_id, words)
    return _bar_chart_svg(list(months), title, element_id, words)


def _bar_chart_svg(months: list[tuple[str, int]], title: str, element_id: str, words: ChartWords) -> str:
    amounts = [amount for _, amount in months]
    step, bottom, top = _axis(min(amounts), max(amounts))
    ticks = list(range(bottom, top + step, step))
    left = 16.0 + CHAR_WIDTH * max(len(_yuan(tick, cents=False)) for tick in ticks)
    slot = max(MIN_PLOT_WIDTH / len(months), MIN_SLOT_WIDTH)
    plot_width = slot * len(months)
    width = left + plot_width + RIGHT_MARGIN
    height = PLOT_TOP + PLOT_HEIGHT + LABEL_BAND
    span = top - bottom

    def y_of(amount_fen: int) -> float:
        # A pixel position, never an amount: the labels format the fen as integers.
        return PLOT_TOP + (top - amount_fen) * PLOT_HEIGHT / span

    zero_y = y_of(0)
    parts = [
        _open_svg(width, height, element_id),
        f'<title id="{element_id}-title">{_text(title)}</title>',
        f'<desc id="{element_id}-desc">{_text(_summary(months, words))}</desc>',
        f'<text x="16" y="24" font-size="{TITLE_FONT_SIZE}" font-weight="600" '
        f'fill="{TEXT_FILL}">{_text(title)}</text>',
        '<g class="grid">',
    ]
    for tick in ticks:
        y = _num(y_of(tick))
        parts.append(
            f'<line x1="{_num(left)}" y1="{y}" x2="{_num(left + plot_width)}" y2="{y}" '
            f'stroke="{GRID_STROKE}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{_num(left - 6)}" y="{_num(y_of(tick) + FONT_SIZE * 0.35)}" '
            f'font-size="{FONT_SIZE}" text-anchor="end" fill="{MUTED_FILL}">'
            f"{_text(_yuan(tick, cents=False))}</text>"
        )
    parts.append("</g>")

    parts.append('<g class="bars">')
    bar_width = slot * BAR_SHARE
    for index, (month, amount_fen) in enumerate(months):
        x = left + index * slot + (slot - bar_width) / 2
        bar_height = abs(amount_fen) * PLOT_HEIGHT / span
        negative = amount_fen < 0
        y = zero_y if negative else zero_y - bar_height
        parts.append(
            f'<rect class="bar{" negative" if negative else ""}" x="{_num(x)}" y="{_num(y)}" '
            f'width="{_num(bar_width)}" height="{_num(bar_height)}" '
            f'fill="{NEGATIVE_FILL if negative else POSITIVE_FILL}">'
            f"<title>{_text(f'{month}: {_yuan(amount_fen, cents=True)}')}</title></rect>"
        )
    parts.append("</g>")

    # Drawn after the bars so it stays visible across their bases.
    parts.append(
        f'<line class="zero" x1="{_num(left)}" y1="{_num(zero_y)}" '
        f'x2="{_num(left + plot_width)}" y2="{_num(zero_y)}" '
        f'stroke="{AXIS_STROKE}" stroke-width="1"/>'
    )

    parts.append(f'<g class="months" font-size="{FONT_SIZE}" text-anchor="middle" fill="{MUTED_FILL}">')
    month_y = PLOT_TOP + PLOT_HEIGHT + 16
    previous_year = None
    for index, (month, _) in enumerate(months):
        center = _num(left + index * slot + slot / 2)
        year, month_number = month.split("-")
        parts.append(
            f'<text x="{center}" y="{_num(month_y)}">'
            f"{_text(words.month_labels[int(month_number) - 1])}</text>"
        )
        # The year only where it changes, so twelve labels of "2026" do not crowd the axis.
        if year != previous_year:
            parts.append(f'<text x="{center}" y="{_num(month_y + 15)}">{year}</text>')
            previous_year = year
    parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _empty_svg(title: str, element_id: str, words: ChartWords) -> str:
    width, height = MIN_PLOT_WIDTH, 96.0
    return "".join([
        _open_svg(width, height, element_id),
        f'<title id="{element_id}-title">{_text(title)}</title>',
        f'<desc id="{element_id}-desc">{_text(words.no_earnings)}</desc>',
        f'<text x="16" y="24" font-size="{TITLE_FONT_SIZE}" font-weight="600" '
        f'fill="{TEXT_FILL}">{_text(title)}</text>',
        f'<text x="{_num(width / 2)}" y="64" font-size="{FONT_SIZE + 2}" text-anchor="middle" '
        f'fill="{MUTED_FILL}">{_text(words.no_earnings)}</text>',
        "</svg>",
    ])


def _open_svg(width: float, height: float, element_id: str) -> str:
    return (
        f'<svg xmlns="{SVG_NAMESPACE}" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'class="earnings-chart" role="img" aria-labelledby="{element_id}-title" '
        f'aria-describedby="{element_id}-desc" font-family="{FONT_FAMILY}">'
    )


def _axis(lowest_fen: int, highest_fen: int) -> tuple[int, int, int]:
    """``(step, bottom, top)`` in fen for the y axis, all multiples of a round step.

    The step is the smallest of ¥1, ¥2, ¥5, ¥10, ¥20, … that covers the amounts (and
    zero) in at most MAX_INTERVALS steps. Integer arithmetic throughout.
    """
    above = max(highest_fen, 0)
    below = max(-lowest_fen, 0)
    magnitude = MIN_STEP_FEN
    while True:
        for multiplier in STEP_MULTIPLIERS:
            step = multiplier * magnitude
            steps_up = -(-above // step)
            steps_down = -(-below // step)
            if steps_up + steps_down <= MAX_INTERVALS:
                if steps_up + steps_down == 0:
                    steps_up = 1  # every month is zero: still draw one interval above it
                return step, -steps_down * step, steps_up * step
        magnitude *= 10


def _summary(months: list[tuple[str, int]], words: ChartWords) -> str:
    """One sentence for screen readers, which do not read the bars' own titles."""
    total = sum(amount for _, amount in months)
    best = max(months, key=lambda item: item[1])
    worst = min(months, key=lambda item: item[1])
    first, last = months[0][0], months[-1][0]
    span = first if len(months) == 1 else words.span % {"first": first, "last": last}
    return words.summary % {
        "months": words.month_count(len(months)),
        "span": span,
        "total": _yuan(total, cents=True),
        "highest_month": best[0],
        "highest": _yuan(best[1], cents=True),
        "lowest_month": worst[0],
        "lowest": _yuan(worst[1], cents=True),
    }


def _yuan(amount_fen: int, *, cents: bool) -> str:
    """``123450`` -> ``"¥1,234.50"`` (or ``"¥1,234"`` without cents); negatives as ``"-¥…"``."""
    sign = "-" if amount_fen < 0 else ""
    whole, fen = divmod(abs(amount_fen), 100)
    text = f"{sign}¥{whole:,}"
    return f"{text}.{fen:02d}" if cents else text


def _num(value: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros, never ``-0``."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def _text(value: str) -> str:
    """``value`` safe as XML character data or inside a double-quoted attribute."""
    value = _NOT_XML_CHAR_RE.sub("\ufffd", value)
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )
