"""The statement files an instructor downloads: CSV and PDF from one StatementDocument.

The PDFs are read back with pypdf, a reader independent of reportlab. The embedded-font
tests never skip: scripts/system-packages installs fonts-wqy-microhei (make runs it), and
a machine without it should fail here rather than quietly test the fallback twice.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import pickle
import subprocess
import sys
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from app.earnings.documents import StatementDocument, StatementRow
from app.earnings.statement_files import (
    BUILTIN_CID_FONT,
    CJK_FONT_CANDIDATES,
    CSV_CHUNK_CHARS,
    PDF_MAX_LINES,
    csv_text_cell,
    statement_csv,
    statement_csv_chunks,
    statement_font,
    statement_pdf,
)
from app.money import format_yuan

REPO = Path(__file__).resolve().parent.parent
MICROHEI = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
MISSING_FONT = "/nonexistent/statement-font.ttf"
RULE = "分成 = 分成比例 × (订单行金额 − 税额)，四舍五入到分。Share = rate × (amount − tax)."
INJECTED_TITLE = '=HYPERLINK("http://attacker.invalid","点我领券")'


def sale(day: int, order_no: str, title: str, amount_fen: int, share_fen: int,
         weight_note: str | None = None) -> StatementRow:
    return StatementRow(
        occurred_at=datetime(2026, 11, day, 10, 15),
        kind="sale",
        order_no=order_no,
        course_title=title,
        amount_fen=amount_fen,
        tax_fen=0,
        fee_fen=amount_fen * 6 // 1000,
        rate_bps=7000,
        weight_note=weight_note,
        share_fen=share_fen,
        memo=f"order {order_no} paid by alipay",
    )


def refund(day: int, order_no: str, title: str, amount_fen: int, share_fen: int) -> StatementRow:
    return StatementRow(
        occurred_at=datetime(2026, 11, day, 16, 40),
        kind="refund",
        order_no=order_no,
        course_title=title,
        amount_fen=amount_fen,
        tax_fen=0,
        fee_fen=0,
        rate_bps=7000,
        weight_note=None,
        share_fen=-share_fen,
        memo=f"refund of 1 line(s) of order {order_no}",
    )


def movement(day: int, kind: str, share_fen: int, memo: str) -> StatementRow:
    return StatementRow(
        occurred_at=datetime(2026, 11, day, 9, 0),
        kind=kind,
        order_no=None,
        course_title=None,
        amount_fen=None,
        tax_fen=None,
        fee_fen=None,
        rate_bps=None,
        weight_note=None,
        share_fen=share_fen,
        memo=memo,
    )


def document_of(rows: tuple[StatementRow, ...], *, opening_fen: int = 1000,
                pending_fen: int = 6930, closed: bool = True) -> StatementDocument:
    """A statement whose totals add up from its rows, as statements.py builds them."""
    def total(kind: str) -> int:
        return sum(row.share_fen for row in rows if row.kind == kind)

    closing = opening_fen + sum(row.share_fen for row in rows)
    return StatementDocument(
        instructor_name="林晓",
        period="2026-11",
        period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 30),
        is_closed=closed,
        closed_at=datetime(2026, 12, 1, 2, 0) if closed else None,
        opening_fen=opening_fen,
        sales_fen=total("sale"),
        refunds_fen=total("refund"),
        adjustments_fen=total("adjustment"),
        payouts_fen=total("payout"),
        closing_fen=closing,
        pending_fen=pending_fen,
        available_fen=closing - pending_fen,
        rule_text=RULE,
        rows=rows,
    )


ROWS = (
    sale(2, "CC20261102101500000001", "Python 数据分析实战", 9900, 6930),
    sale(3, "CC20261103101500000002", "机器学习入门：从零到一", 19900, 9287, weight_note="2 of 3"),
    sale(4, "CC20261104101500000003", INJECTED_TITLE, 4900, 3430),
    refund(5, "CC20261103101500000002", "机器学习入门：从零到一", 19900, 9287),
    refund(6, "CC20261104101500000003", INJECTED_TITLE, 4900, 3430),
    refund(7, "CC20261107101500000004", "Python 数据分析实战", 9900, 6930),
    movement(8, "adjustment", 1230, "+补发 November bonus"),
    movement(9, "adjustment", -1230, "-扣回 clawback of the bonus"),
    movement(10, "adjustment", 500, "@finance 手工调整"),
    movement(11, "payout", -5000, "提现至支付宝 payout to Alipay"),
    movement(12, "payout", -3000, "提现至银行卡 payout to bank card"),
    movement(13, "payout", -2000, "提现至支付宝 payout to Alipay"),
)
STATEMENT = document_of(ROWS)
HEADING = [
    "日期 Date", "类型 Kind", "订单号 Order no.", "课程 Course", "实付(元) Amount (CNY)",
    "税额(元) Tax (CNY)", "手续费(元) Fee (CNY)", "分成比例 Rate", "合著权重 Co-author weight",
    "分成(元) Share (CNY)", "备注 Memo",
]


def long_statement(count: int = 200) -> StatementDocument:
    rows = tuple(
        sale(1 + index % 28, f"CC202611{index:014d}", f"第 {index} 课 Python 数据分析实战",
             9900, 6930)
        for index in range(count)
    )
    return document_of(rows, pending_fen=0)


def parsed_csv(document: StatementDocument) -> list[list[str]]:
    return list(csv.reader(io.StringIO(statement_csv(document).decode("utf-8-sig"), newline="")))


def pdf_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def pdf_base_fonts(pdf: bytes) -> dict[str, bool]:
    """Each font used on the pages by its /BaseFont, and whether its file is embedded."""
    fonts: dict[str, bool] = {}
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descriptor = None
            if "/DescendantFonts" in font:
                descriptor = font["/DescendantFonts"][0].get_object().get("/FontDescriptor")
            elif "/FontDescriptor" in font:
                descriptor = font["/FontDescriptor"]
            embedded = descriptor is not None and any(
                key in descriptor.get_object() for key in ("/FontFile", "/FontFile2", "/FontFile3")
            )
            fonts[str(font["/BaseFont"])] = embedded
    return fonts


# --- CSV --------------------------------------------------------------------------


def test_csv_is_utf8_with_bom_and_crlf_line_ends() -> None:
    raw = statement_csv(STATEMENT)
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert "林晓" in text and "Python 数据分析实战" in text
    assert text.count("\r\n") == text.count("\n")


def test_csv_is_byte_identical_for_the_same_document() -> None:
    assert statement_csv(STATEMENT) == statement_csv(document_of(ROWS))


def test_csv_chunks_join_to_the_whole_file_whatever_the_rows_come_from() -> None:
    document = long_statement(3000)
    chunks = list(statement_csv_chunks(document))
    assert len(chunks) > 3 and b"".join(chunks) == statement_csv(document)
    assert chunks[0].startswith(b"\xef\xbb\xbf") and b"CC202611" not in chunks[0]
    assert all(chunk.count(b"\xef\xbb\xbf") == 0 for chunk in chunks[1:])
    assert max(len(chunk.decode("utf-8")) for chunk in chunks) < CSV_CHUNK_CHARS + 1024
    # Rows given apart (as a closed statement's are, read in batches) stand in for the document's.
    head = replace(document, rows=())
    assert b"".join(statement_csv_chunks(head, iter(document.rows))) == statement_csv(document)


def test_csv_header_lines_name_instructor_period_status_rule_and_opening() -> None:
    lines = parsed_csv(STATEMENT)
    assert lines[:6] == [
        ["讲师 Instructor", "林晓"],
        ["账期 Period", "2026-11", "2026-11-01 ~ 2026-11-30"],
        ["状态 Status", "已结账 closed", "2026-12-01 02:00 北京时间 Beijing time"],
        ["分成规则 Rule", RULE],
        [],
        ["期初余额 Opening balance", "10.00"],
    ]


def test_csv_says_an_open_month_may_still_change() -> None:
    lines = parsed_csv(document_of(ROWS, closed=False))
    assert lines[2] == ["状态 Status", "未结账 open", "本月数据可能变动 figures may still change"]


def test_csv_has_one_line_per_row_with_yuan_amounts_and_bilingual_heading() -> None:
    lines = parsed_csv(STATEMENT)
    start = lines.index(HEADING) + 1
    body = lines[start:start + len(ROWS)]
    assert body[0] == [
        "2026-11-02 10:15", "销售 sale", "CC20261102101500000001", "Python 数据分析实战",
        "99.00", "0.00", "0.59", "70.00%", "", "69.30",
        "order CC20261102101500000001 paid by alipay",
    ]
    assert body[1][3] == "机器学习入门：从零到一" and body[1][8] == "2 of 3"
    assert body[3][:2] == ["2026-11-05 16:40", "退款 refund"] and body[3][9] == "-92.87"
    assert body[9] == [
        "2026-11-11 09:00", "提现 payout", "", "", "", "", "", "", "", "-50.00",
        "提现至支付宝 payout to Alipay",
    ]
    assert [line[1] for line in body] == (
        ["销售 sale"] * 3 + ["退款 refund"] * 3 + ["调整 adjustment"] * 3 + ["提现 payout"] * 3
    )
    assert lines[start + len(ROWS)] == []


def test_csv_summary_adds_up_and_a_negative_closing_keeps_its_minus() -> None:
    assert STATEMENT.closing_fen < 0 and STATEMENT.available_fen < 0
    summary = parsed_csv(STATEMENT)[-7:]
    assert summary == [
        ["本期销售 Sales", "196.47"],
        ["退款 Refunds", "-196.47"],
        ["调整 Adjustments", "5.00"],
        ["提现 Payouts", "-100.00"],
        ["期末余额 Closing balance", format_yuan(STATEMENT.closing_fen)],
        ["其中待结算 of which pending", "69.30"],
        ["其中可提现 of which available", format_yuan(STATEMENT.available_fen)],
    ]
    assert summary[4][1] == "-85.00"


def test_csv_escapes_text_cells_that_a_spreadsheet_would_run_as_formulas() -> None:
    lines = parsed_csv(replace(STATEMENT, instructor_name="=cmd|' /C calc'!A0"))
    assert lines[0] == ["讲师 Instructor", "'=cmd|' /C calc'!A0"]
    start = lines.index(HEADING) + 1
    body = lines[start:start + len(ROWS)]
    assert body[2][3] == "'" + INJECTED_TITLE
    assert body[4][3] == "'" + INJECTED_TITLE
    assert [body[index][10] for index in (6, 7, 8)] == [
        "'+补发 November bonus", "'-扣回 clawback of the bonus", "'@finance 手工调整",
    ]


def test_csv_leaves_negative_amounts_as_numbers() -> None:
    lines = parsed_csv(STATEMENT)
    start = lines.index(HEADING) + 1
    refund_line = lines[start + 3]
    assert refund_line[9] == "-92.87"
    assert parsed_csv(STATEMENT)[-3][1] == "-85.00"


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+86 138 0000 0000", "'+86 138 0000 0000"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("Python 数据分析实战", "Python 数据分析实战"),
        ("C++ 入门", "C++ 入门"),
        ("", ""),
    ],
)
def test_csv_text_cell_prefixes_only_formula_starts(text: str, cell: str) -> None:
    assert csv_text_cell(text) == cell


def test_a_row_of_unknown_kind_is_refused() -> None:
    odd = replace(ROWS[0], kind="bonus")
    with pytest.raises(ValueError, match="bonus"):
        statement_csv(document_of((odd,)))


# --- PDF --------------------------------------------------------------------------


def test_the_embedded_font_is_the_one_system_packages_installs() -> None:
    assert os.path.isfile(MICROHEI), "run `bash scripts/system-packages` (make does)"
    assert CJK_FONT_CANDIDATES[0] == MICROHEI
    assert statement_font().path == MICROHEI


@pytest.fixture(params=["embedded", "builtin"], scope="module")
def font_path(request: pytest.FixtureRequest) -> str | None:
    """None picks the installed TrueType font; a missing file forces the CID fallback."""
    return None if request.param == "embedded" else MISSING_FONT


@pytest.fixture(scope="module")
def short_pdf(font_path: str | None) -> bytes:
    return statement_pdf(STATEMENT, font_path)


@pytest.fixture(scope="module")
def long_pdf(font_path: str | None) -> bytes:
    return statement_pdf(long_statement(), font_path)


def test_pdf_uses_the_font_asked_for(short_pdf: bytes, font_path: str | None) -> None:
    fonts = pdf_base_fonts(short_pdf)
    if font_path is None:
        # Subset fonts are named "ABCDEF+Face"; the face is WenQuanYi Micro Hei.
        embedded = {name: is_in for name, is_in in fonts.items() if "WenQuanYi" in name}
        assert embedded and all(embedded.values()) and "+" in next(iter(embedded))
        assert not any(BUILTIN_CID_FONT in name for name in fonts)
    else:
        assert fonts.get(f"/{BUILTIN_CID_FONT}") is False
        assert not any("WenQuanYi" in name for name in fonts)


def test_pdf_text_reads_back_with_chinese_intact(short_pdf: bytes) -> None:
    assert short_pdf.startswith(b"%PDF-")
    text = "\n".join(pdf_text(short_pdf))
    for expected in ("收入对账单", "林晓", "Python 数据分析实战", "机器学习入门：从零到一",
                     "已结账 closed", "期初余额", "10.00", "期末余额", "-85.00", "提现至支付宝"):
        assert expected in text


def test_pdf_is_byte_identical_for_the_same_document(short_pdf: bytes,
                                                    font_path: str | None) -> None:
    assert statement_pdf(document_of(ROWS), font_path) == short_pdf


def test_pdf_is_byte_identical_from_a_fresh_process(short_pdf: bytes,
                                                    font_path: str | None) -> None:
    """Another worker process (another hash seed, a fresh font registry) renders alike."""
    script = (
        "import pickle, sys\n"
        "from app.earnings.statement_files import statement_pdf\n"
        "document, font_path = pickle.load(sys.stdin.buffer)\n"
        "sys.stdout.buffer.write(statement_pdf(document, font_path))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=pickle.dumps((STATEMENT, font_path)),
        capture_output=True,
        cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        check=True,
        timeout=60,
    )
    assert result.stdout == short_pdf


def test_pdf_table_flows_over_pages_with_its_heading_repeated(long_pdf: bytes) -> None:
    pages = pdf_text(long_pdf)
    pages_with_rows = [page for page in pages if "CC202611" in page]
    assert len(pages_with_rows) > 1
    assert all("订单号" in page and "Order no." in page for page in pages_with_rows)
    text = "\n".join(pages)
    missing = [f"CC202611{index:014d}" for index in range(200)
               if f"CC202611{index:014d}" not in text]
    assert missing == []
    assert format_yuan(long_statement().closing_fen) in pages[-1]


def test_pdf_prints_markup_characters_as_text() -> None:
    title = "<b>C++ & Go</b> 并发编程"
    rows = (sale(2, "CC20261102101500000009", title, 9900, 6930),)
    assert title in "\n".join(pdf_text(statement_pdf(document_of(rows))))


def test_a_missing_configured_font_falls_back_to_the_builtin_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.earnings.statement_files"):
        font = statement_font(MISSING_FONT)
    assert font.name == BUILTIN_CID_FONT and font.path is None
    assert MISSING_FONT in caplog.text


def test_a_file_that_is_not_a_font_falls_back_to_the_builtin(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font at all" * 100)
    assert statement_font(str(broken)).path is None


def test_a_pdf_lists_up_to_the_limit_of_lines_and_no_more() -> None:
    at_limit = "\n".join(pdf_text(statement_pdf(STATEMENT, line_count=PDF_MAX_LINES)))
    assert "CC20261102101500000001" in at_limit and "every line is in the CSV" not in at_limit
    pages = pdf_text(statement_pdf(STATEMENT, line_count=PDF_MAX_LINES + 1))
    past = "\n".join(pages)
    assert len(pages) == 1 and "CC2026110" not in past
    assert f"This statement has {PDF_MAX_LINES + 1:,} lines" in past and "every line is in the CSV" in past
    assert "全部明细见同一账期的 CSV 文件" in past
    for kept in ("林晓", "期初余额", "10.00", "期末余额", "-85.00", "其中可提现"):
        assert kept in past


def test_a_document_holding_more_rows_than_the_limit_prints_without_them() -> None:
    """The open month's document holds its rows; past the limit its PDF leaves them out too."""
    document = long_statement(PDF_MAX_LINES + 1)
    pages = pdf_text(statement_pdf(document))
    assert len(pages) == 1 and "CC202611" not in pages[0]
    assert f"{PDF_MAX_LINES + 1:,} lines" in pages[0]
    assert format_yuan(document.closing_fen) in pages[0]
