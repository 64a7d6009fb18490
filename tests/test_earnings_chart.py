"""The monthly earnings chart: well-formed, proportional, escaped and CSP-clean SVG."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from app.earnings.chart import monthly_earnings_svg

NS = {"svg": "http://www.w3.org/2000/svg"}
SVG = "{http://www.w3.org/2000/svg}"

YEAR = [
    ("2025-12", 123450),
    ("2026-01", 98050),
    ("2026-02", -15000),
    ("2026-03", 0),
    ("2026-04", 250001),
    ("2026-05", 1),
]
HOSTILE_TITLE = '收入 </title><script>alert(1)</script> & "quoted" \'single\' <g onload="x">'


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def bars(root: ET.Element) -> list[ET.Element]:
    return root.findall(".//svg:rect[@class]", NS)


def zero_line_y(root: ET.Element) -> float:
    (line,) = root.findall(".//svg:line[@class='zero']", NS)
    assert line.get("y1") == line.get("y2")
    return float(line.get("y1"))


def test_one_bar_per_month_in_the_order_given():
    root = parse(monthly_earnings_svg(YEAR, "Monthly earnings"))
    found = bars(root)
    assert len(found) == len(YEAR)
    titles = [bar.find("svg:title", NS).text for bar in found]
    assert titles == [
        "2025-12: ¥1,234.50",
        "2026-01: ¥980.50",
        "2026-02: -¥150.00",
        "2026-03: ¥0.00",
        "2026-04: ¥2,500.01",
        "2026-05: ¥0.01",
    ]
    xs = [float(bar.get("x")) for bar in found]
    assert xs == sorted(xs)


def test_bar_heights_are_proportional_to_the_amounts():
    root = parse(monthly_earnings_svg(YEAR, "Monthly earnings"))
    heights = [float(bar.get("height")) for bar in bars(root)]
    largest = max(abs(amount) for _, amount in YEAR)
    px_per_fen = max(heights) / largest
    for (_, amount), height in zip(YEAR, heights):
        assert height == pytest.approx(abs(amount) * px_per_fen, abs=0.01)
    assert heights[3] == 0  # a month of zero still has its (empty) bar


def test_positive_bars_stand_on_the_zero_line_and_negative_ones_hang_below():
    root = parse(monthly_earnings_svg(YEAR, "Monthly earnings"))
    zero = zero_line_y(root)
    for (_, amount), bar in zip(YEAR, bars(root)):
        top, height = float(bar.get("y")), float(bar.get("height"))
        if amount < 0:
            assert top == pytest.approx(zero)
            assert top + height > zero
            assert "negative" in bar.get("class").split()
        else:
            assert top + height == pytest.approx(zero, abs=0.01)
            assert "negative" not in bar.get("class").split()


def test_a_negative_month_has_a_different_fill():
    root = parse(monthly_earnings_svg([("2026-10", 5000), ("2026-11", -2000)], "t"))
    positive, negative = bars(root)
    assert positive.get("fill") != negative.get("fill")


def test_only_negative_months_still_draw_below_the_zero_line():
    root = parse(monthly_earnings_svg([("2026-10", -5000), ("2026-11", -100)], "t"))
    zero = zero_line_y(root)
    assert all(float(bar.get("y")) == pytest.approx(zero) for bar in bars(root))
    assert all(float(bar.get("height")) > 0 for bar in bars(root))


def axis_labels(root: ET.Element) -> list[str]:
    return [text.text for text in root.findall(".//svg:g[@class='grid']/svg:text", NS)]


def test_y_axis_labels_are_round_yuan_steps_covering_the_amounts():
    root = parse(monthly_earnings_svg(YEAR, "Monthly earnings"))
    assert axis_labels(root) == ["-¥1,000", "¥0", "¥1,000", "¥2,000", "¥3,000"]


@pytest.mark.parametrize(
    ("months", "labels"),
    [
        ([("2026-11", 0)], ["¥0", "¥1"]),
        ([("2026-11", 37)], ["¥0", "¥1"]),
        ([("2026-11", 999)], ["¥0", "¥2", "¥4", "¥6", "¥8", "¥10"]),
        ([("2026-11", 1_000_000_00)], ["¥0", "¥200,000", "¥400,000", "¥600,000", "¥800,000",
                                       "¥1,000,000"]),
        ([("2026-11", -700)], ["-¥8", "-¥6", "-¥4", "-¥2", "¥0"]),
    ],
    ids=["all-zero", "under-a-yuan", "just-under-ten", "a-million", "negative-only"],
)
def test_y_axis_steps_are_one_two_or_five_times_a_power_of_ten(months, labels):
    assert axis_labels(parse(monthly_earnings_svg(months, "t"))) == labels


def test_month_labels_name_the_month_and_the_year_where_it_changes():
    root = parse(monthly_earnings_svg(YEAR, "t"))
    labels = [text.text for text in root.findall(".//svg:g[@class='months']/svg:text", NS)]
    assert labels == ["Dec", "2025", "Jan", "2026", "Feb", "Mar", "Apr", "May"]


def test_the_document_is_labelled_for_assistive_technology():
    root = parse(monthly_earnings_svg(YEAR, "Earnings 2026"))
    assert root.get("role") == "img"
    title = root.find(f"svg:title[@id='{root.get('aria-labelledby')}']", NS)
    assert title is not None and title.text == "Earnings 2026"
    desc = root.find(f"svg:desc[@id='{root.get('aria-describedby')}']", NS)
    assert desc is not None
    assert "total ¥4,565.02" in desc.text
    assert "lowest 2026-02 -¥150.00" in desc.text
    assert re.fullmatch(r"0 0 [0-9.]+ [0-9.]+", root.get("viewBox"))


def test_two_charts_on_one_page_can_have_their_own_ids():
    root = parse(monthly_earnings_svg(YEAR, "t", element_id="chart-2025"))
    assert root.get("aria-labelledby") == "chart-2025-title"
    with pytest.raises(ValueError):
        monthly_earnings_svg(YEAR, "t", element_id='x" onload="alert(1)')


def test_a_hostile_title_is_escaped_text():
    svg = monthly_earnings_svg(YEAR, HOSTILE_TITLE)
    root = parse(svg)
    assert root.find("svg:title", NS).text == HOSTILE_TITLE
    assert [text.text for text in root.findall("svg:text", NS)] == [HOSTILE_TITLE]
    assert "<script" not in svg
    assert root.findall(".//svg:script", NS) == []
    assert {el.tag for el in root.iter()} <= {
        f"{SVG}{name}" for name in ("svg", "title", "desc", "text", "g", "line", "rect")
    }


def test_characters_xml_cannot_carry_do_not_break_the_document():
    svg = monthly_earnings_svg([("2026-11", 100)], "bell\x07 nul\x00 lone\ud800 end")
    assert parse(svg).find("svg:title", NS).text == "bell\ufffd nul\ufffd lone\ufffd end"


@pytest.mark.parametrize(
    "months",
    [YEAR, [], [("2026-11", -1)]],
    ids=["year", "empty", "one-negative"],
)
def test_the_svg_is_inert_under_a_strict_content_security_policy(months):
    svg = monthly_earnings_svg(months, HOSTILE_TITLE)
    root = parse(svg)
    assert "<script" not in svg.lower()
    assert "style=" not in svg.lower()
    assert "<style" not in svg.lower()
    for element in root.iter():
        for name in element.attrib:
            local = name.rsplit("}", 1)[-1].lower()
            assert not local.startswith("on"), name
            assert local not in {"style", "href"}, name
    assert re.findall(r"https?://[^\"'\s<>]*", svg) == ["http://www.w3.org/2000/svg"]


def test_no_months_says_there_are_no_earnings_yet():
    svg = monthly_earnings_svg([], "收入 & <more>")
    root = parse(svg)
    assert bars(root) == []
    assert root.get("role") == "img"
    assert root.find("svg:title", NS).text == "收入 & <more>"
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert "No earnings yet." in texts


def test_the_same_input_gives_the_same_document():
    assert monthly_earnings_svg(YEAR, "t") == monthly_earnings_svg(list(YEAR), "t")


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-11", "２０２６-11", "2026-11<x>"])
def test_a_month_that_is_not_yyyy_mm_is_refused(month):
    with pytest.raises(ValueError):
        monthly_earnings_svg([(month, 100)], "t")


@pytest.mark.parametrize("amount", [1.5, "100", True])
def test_an_amount_that_is_not_integer_fen_is_refused(amount):
    with pytest.raises(TypeError):
        monthly_earnings_svg([("2026-11", amount)], "t")


def test_many_months_keep_every_bar_inside_the_view_box():
    months = [(f"{2020 + i // 12}-{i % 12 + 1:02d}", (i - 20) * 12345) for i in range(60)]
    root = parse(monthly_earnings_svg(months, "Five years"))
    _, _, width, height = (float(part) for part in root.get("viewBox").split())
    for bar in bars(root):
        x, y = float(bar.get("x")), float(bar.get("y"))
        assert 0 <= x and x + float(bar.get("width")) <= width
        assert 0 <= y and y + float(bar.get("height")) <= height
