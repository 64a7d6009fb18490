"""An instructor's monthly statement as files to download: CSV for a spreadsheet, PDF to
print or keep.

Both are drawn from a `StatementDocument` alone and carry no render time, so a closed
month gives byte-identical files on every download (the PDF for a given reportlab
version and font file). Nothing here knows Flask: a view passes the font path it is
configured with, e.g. ``current_app.config.get("STATEMENT_FONT_PATH")``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    KeepTogether,
    LongTable,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.doctemplate import BaseDocTemplate

from app.earnings.documents import StatementDocument, StatementRow
from app.money import format_yuan

logger = logging.getLogger(__name__)

# Debian's CJK TrueType fonts, in order of preference (scripts/system-packages installs
# the first). A .ttc holds several faces; index 0 is the proportional one in each.
CJK_FONT_CANDIDATES: tuple[str, ...] = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
# One of the CID fonts every PDF reader must supply: Chinese stays text, nothing is
# embedded, and the glyphs are the reader's.
BUILTIN_CID_FONT = "STSong-Light"

KIND_LABELS: dict[str, tuple[str, str]] = {
    "sale": ("销售", "sale"),
    "refund": ("退款", "refund"),
    "adjustment": ("调整", "adjustment"),
    "payout": ("提现", "payout"),
}

# (Chinese, English) column headings of the rows table; amounts are yuan.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("日期", "Date"),
    ("类型", "Kind"),
    ("订单号", "Order no."),
    ("课程", "Course"),
    ("实付(元)", "Amount (CNY)"),
    ("税额(元)", "Tax (CNY)"),
    ("手续费(元)", "Fee (CNY)"),
    ("分成比例", "Rate"),
    ("合著权重", "Co-author weight"),
    ("分成(元)", "Share (CNY)"),
    ("备注", "Memo"),
)
# Columns holding text that people wrote (or that we generate but do not vouch for as
# a number); the rest are dates, our own labels and amounts.
_TEXT_COLUMNS = frozenset({2, 3, 8, 10})
_NUMBER_COLUMNS = frozenset({4, 5, 6, 7, 9})

# A spreadsheet evaluates a cell starting with one of these as a formula (OWASP "CSV
# injection"); a leading apostrophe keeps it text.
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


# --- shared wording ---------------------------------------------------------------


def _bilingual(label: tuple[str, str]) -> str:
    return f"{label[0]} {label[1]}"


def _minute(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _rate(rate_bps: int) -> str:
    sign = "-" if rate_bps < 0 else ""
    whole, hundredths = divmod(abs(rate_bps), 100)
    return f"{sign}{whole}.{hundredths:02d}%"


def _optional_yuan(amount_fen: int | None) -> str:
    return "" if amount_fen is None else format_yuan(amount_fen)


def _kind_label(kind: str) -> str:
    try:
        return _bilingual(KIND_LABELS[kind])
    except KeyError:
        raise ValueError(f"statement row of unknown kind {kind!r}") from None


def _status(document: StatementDocument) -> tuple[str, ...]:
    if not document.is_closed:
        return ("未结账 open", "本月数据可能变动 figures may still change")
    if document.closed_at is None:
        return ("已结账 closed",)
    return ("已结账 closed", f"{_minute(document.closed_at)} 北京时间 Beijing time")


def _header_lines(document: StatementDocument) -> list[tuple[str, tuple[str, ...]]]:
    """The lines above the table, each a label and its values, as both files show them."""
    return [
        ("讲师 Instructor", (document.instructor_name,)),
        (
            "账期 Period",
            (
                document.period,
                f"{document.period_start.isoformat()} ~ {document.period_end.isoformat()}",
            ),
        ),
        ("状态 Status", _status(document)),
        ("分成规则 Rule", (document.rule_text,)),
    ]


def _row_fields(row: StatementRow) -> tuple[str, ...]:
    """One row's cells in COLUMNS order, as plain strings (no escaping for any format)."""
    return (
        _minute(row.occurred_at),
        _kind_label(row.kind),
        row.order_no or "",
        row.course_title or "",
        _optional_yuan(row.amount_fen),
        _optional_yuan(row.tax_fen),
        _optional_yuan(row.fee_fen),
        "" if row.rate_bps is None else _rate(row.rate_bps),
        row.weight_note or "",
        format_yuan(row.share_fen),
        row.memo,
    )


OPENING_LABEL = "期初余额 Opening balance"
CLOSING_LABEL = "期末余额 Closing balance"


def _summary_lines(document: StatementDocument) -> list[tuple[str, int]]:
    return [
        ("本期销售 Sales", document.sales_fen),
        ("退款 Refunds", document.refunds_fen),
        ("调整 Adjustments", document.adjustments_fen),
        ("提现 Payouts", document.payouts_fen),
        (CLOSING_LABEL, document.closing_fen),
        ("其中待结算 of which pending", document.pending_fen),
        ("其中可提现 of which available", document.available_fen),
    ]


# --- CSV --------------------------------------------------------------------------


def csv_text_cell(text: str) -> str:
    """Text from people (titles, names, memos) made safe to open in a spreadsheet.

    A cell starting with = + - @ tab or CR gets a leading apostrophe, so Excel and
    LibreOffice do not run it as a formula. Amount cells must not go through this: a
    negative amount such as ``"-12.30"`` is a number, not an attack.
    """
    return "'" + text if text.startswith(_FORMULA_TRIGGERS) else text


# A streamed CSV is handed on in pieces of about this many characters: small enough that
# memory stays flat however long the statement, large enough that the pieces are few.
CSV_CHUNK_CHARS = 64 * 1024


def statement_csv(document: StatementDocument) -> bytes:
    """The statement as CSV, whole: `statement_csv_chunks` joined."""
    return b"".join(statement_csv_chunks(document))


def statement_csv_chunks(
    document: StatementDocument, rows: Iterable[StatementRow] | None = None
) -> Iterator[bytes]:
    """The statement as CSV, in pieces: UTF-8 with a byte order mark, CRLF line ends.

    The BOM is what makes Excel read the file as UTF-8 rather than the system code page,
    which would garble every Chinese title. Layout, top to bottom: header lines (label,
    values), a blank line, the opening balance, a blank line, the table heading and one
    line per row, a blank line, then the summary (label, amount). Amounts are yuan with
    two decimals, signed as the balance moves.

    ``rows``, when given, stands in for ``document.rows``: a closed statement's lines
    read from the database batch by batch, never all at once. Only the totals printed in
    the summary come from ``document``; the rows are consumed once, in order. The first
    piece (header to table heading) is ready before any row is read, then a piece
    follows every `CSV_CHUNK_CHARS` or so; joined, the pieces are the same bytes
    whatever the chunking.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for label, values in _header_lines(document):
        writer.writerow([label, *(csv_text_cell(value) for value in values)])
    writer.writerow([])
    writer.writerow([OPENING_LABEL, format_yuan(document.opening_fen)])
    writer.writerow([])
    writer.writerow([_bilingual(column) for column in COLUMNS])
    yield _take(buffer).encode("utf-8-sig")
    for row in document.rows if rows is None else rows:
        fields = _row_fields(row)
        writer.writerow(
            [
                csv_text_cell(value) if index in _TEXT_COLUMNS else value
                for index, value in enumerate(fields)
            ]
        )
        if buffer.tell() >= CSV_CHUNK_CHARS:
            yield _take(buffer).encode("utf-8")
    writer.writerow([])
    for label, amount_fen in _summary_lines(document):
        writer.writerow([label, format_yuan(amount_fen)])
    yield _take(buffer).encode("utf-8")


def _take(buffer: io.StringIO) -> str:
    """What the buffer holds, leaving it empty for the next piece."""
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


# --- PDF fonts --------------------------------------------------------------------


@dataclass(frozen=True)
class StatementFont:
    """The font a statement PDF is set in.

    ``name`` is reportlab's registered name; ``path`` is the TrueType file that gets
    embedded (as a subset), or None for the built-in CID font, which is not embedded.
    """

    name: str
    path: str | None


def _register_truetype(path: str) -> StatementFont:
    # Registered fonts live in reportlab's process-wide registry, so the name is derived
    # from the file: registering once per process, and never two files under one name.
    name = "StatementTTF-" + hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, path, subfontIndex=0))
    return StatementFont(name=name, path=path)


def _builtin_font() -> StatementFont:
    if BUILTIN_CID_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(BUILTIN_CID_FONT))
    return StatementFont(name=BUILTIN_CID_FONT, path=None)


def statement_font(font_path: str | None = None) -> StatementFont:
    """Choose (and register with reportlab) the font for statement PDFs.

    With ``font_path`` None, the first installed of `CJK_FONT_CANDIDATES`. With a path,
    that file only: a font that is missing or that reportlab cannot embed is logged as
    a warning and the built-in CID font `BUILTIN_CID_FONT` is used instead, so a
    misconfigured server still issues statements, and never in a font nobody chose.
    """
    if font_path is not None:
        candidates: tuple[str, ...] = (font_path,)
    else:
        candidates = tuple(path for path in CJK_FONT_CANDIDATES if os.path.isfile(path))
    for path in candidates:
        if not os.path.isfile(path):
            logger.warning("statement font %s not found; using %s", path, BUILTIN_CID_FONT)
            continue
        try:
            return _register_truetype(path)
        except TTFError as error:
            logger.warning("statement font %s unusable: %s", path, error)
    return _builtin_font()


# --- PDF --------------------------------------------------------------------------

_PAGE_SIZE = landscape(A4)
_MARGIN = 12 * mm
# Points: landscape A4 less the margins and the frame's 6 pt padding leaves about 761.
_COLUMN_WIDTHS = (66, 62, 100, 138, 46, 44, 44, 40, 40, 50, 130)


@dataclass(frozen=True)
class _Styles:
    title: ParagraphStyle
    body: ParagraphStyle
    cell: ParagraphStyle
    cell_right: ParagraphStyle
    heading: ParagraphStyle
    font_name: str


def _styles(font_name: str) -> _Styles:
    body = ParagraphStyle("body", fontName=font_name, fontSize=9, leading=12, wordWrap="CJK")
    cell = ParagraphStyle("cell", parent=body, fontSize=7.5, leading=9.5)
    return _Styles(
        title=ParagraphStyle("title", parent=body, fontSize=16, leading=20, spaceAfter=6),
        body=body,
        cell=cell,
        cell_right=ParagraphStyle("cell_right", parent=cell, alignment=TA_RIGHT),
        heading=ParagraphStyle("heading", parent=cell, textColor=colors.white),
        font_name=font_name,
    )


def _markup(text: str) -> str:
    # Paragraphs parse their text as markup: a course called "<b>C++ & Go" is text, and
    # the line breaks someone typed into a memo or the rule text are kept.
    return escape(text).replace("\n", "<br/>")


def _header_story(document: StatementDocument, styles: _Styles) -> list[Any]:
    story: list[Any] = [
        Paragraph(f"收入对账单 Earnings statement {_markup(document.period)}", styles.title)
    ]
    for label, values in _header_lines(document):
        shown = "  ".join(_markup(value) for value in values)
        story.append(Paragraph(f"{label}: {shown}", styles.body))
    story.append(Spacer(0, 4))
    story.append(
        Paragraph(f"{OPENING_LABEL}: {format_yuan(document.opening_fen)}", styles.body)
    )
    story.append(Spacer(0, 6))
    return story


def _rows_table(document: StatementDocument, styles: _Styles) -> LongTable:
    heading = [Paragraph(f"{zh}<br/>{en}", styles.heading) for zh, en in COLUMNS]
    data: list[list[Any]] = [heading]
    for row in document.rows:
        cells: list[Any] = []
        for index, value in enumerate(_row_fields(row)):
            style = styles.cell_right if index in _NUMBER_COLUMNS else styles.cell
            cells.append(Paragraph(_markup(value), style))
        data.append(cells)
    # splitInRow: a row taller than a page (a very long memo) breaks across pages rather
    # than failing the whole build.
    table = LongTable(data, colWidths=_COLUMN_WIDTHS, repeatRows=1, splitInRow=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#34495e")),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f4f6")]),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#c8cdd2")),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
                ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _summary_table(document: StatementDocument, styles: _Styles) -> Table:
    lines = _summary_lines(document)
    data = [[label, format_yuan(amount_fen)] for label, amount_fen in lines]
    table = Table(data, colWidths=(170, 80), hAlign="RIGHT")
    closing_row = [label for label, _ in lines].index(CLOSING_LABEL)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), styles.font_name),
                ("FONTSIZE", (0, 0), (-1, -1), 9),
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("LINEABOVE", (0, closing_row), (-1, closing_row), 0.75, colors.black),
                ("FONTSIZE", (0, closing_row), (-1, closing_row), 10),
            ]
        )
    )
    return table


# The most lines a PDF lists. reportlab lays a table out in memory, at about 1.5 ms of CPU
# and 30 KB per line here: 2,000 lines are 50 to 100 pages (as titles wrap), built in about
# 3 s within 60 MB, which a web request can afford and a person can still print. The busiest
# instructors' months run to 100,000 lines (thousands of pages, minutes of CPU and GBs
# of memory, and no use on paper); their PDF keeps the header and the summary, which are
# what a PDF is kept for, and points to the CSV, which is streamed with every line.
PDF_MAX_LINES = 2_000


def _too_many_lines_note(line_count: int) -> str:
    return (
        f"本账期共 {line_count:,} 条明细，超过 PDF 所列上限 {PDF_MAX_LINES:,} 条；"
        f"全部明细见同一账期的 CSV 文件。<br/>"
        f"This statement has {line_count:,} lines, more than a PDF lists ({PDF_MAX_LINES:,}): "
        f"every line is in the CSV file of the same period."
    )


def statement_pdf(
    document: StatementDocument, font_path: str | None = None, *, line_count: int | None = None
) -> bytes:
    """The statement as an A4 (landscape) PDF, the same content as `statement_csv`.

    ``font_path`` is as for `statement_font`. The PDF is built with reportlab's
    ``invariant`` mode (fixed creation date and file id), so the same document, font
    file and reportlab version give byte-identical bytes. The rows table flows over as
    many pages as it needs, its heading repeated on each; every page's footer names the
    instructor, the period and whether the month is closed.

    A statement of more than `PDF_MAX_LINES` lines is printed without them: header,
    opening balance, a note that the CSV of the same period carries every line, and the
    summary. ``line_count`` is how many lines the statement has, for a caller that did
    not load them (``document.rows`` then goes unread); None counts ``document.rows``.
    """
    if line_count is None:
        line_count = len(document.rows)
    font = statement_font(font_path)
    styles = _styles(font.name)
    status = "已结账 closed" if document.is_closed else "未结账 open"
    footer = f"{document.instructor_name} | {document.period} | {status}"

    def draw_footer(canvas: Canvas, doc: BaseDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(font.name, 7)
        canvas.drawString(_MARGIN, _MARGIN / 2, footer)
        page = canvas.getPageNumber()
        canvas.drawRightString(_PAGE_SIZE[0] - _MARGIN, _MARGIN / 2, f"第 {page} 页 Page {page}")
        canvas.restoreState()

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=_PAGE_SIZE,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=_MARGIN,
        bottomMargin=_MARGIN,
        title=f"收入对账单 Earnings statement {document.period}",
        author=document.instructor_name,
        creator="CourseCashier",
        invariant=1,
    )
    story = _header_story(document, styles)
    if line_count > PDF_MAX_LINES:
        story.append(Paragraph(_too_many_lines_note(line_count), styles.body))
    else:
        story.append(_rows_table(document, styles))
    # The summary is read as one block: it moves whole to the next page rather than split.
    story.append(KeepTogether([Spacer(0, 8), _summary_table(document, styles)]))
    doc.build(story, onFirstPage=draw_footer, onLaterPages=draw_footer)
    return buffer.getvalue()
