"""A receipt as PDF: the same fields as the signed JSON, its SHA-256, the signature and
a QR code of the signature. Set in the statement PDFs' CJK font (app/earnings)."""
from __future__ import annotations

import io
import textwrap
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from app.checkout.qr import qr_matrix
from app.earnings.statement_files import statement_font
from app.money import format_yuan

TITLES = {"payment": ("支付凭证", "Payment receipt"), "balance": ("余额支付凭证", "Balance payment receipt"),
          "refund": ("退款凭证", "Refund receipt")}
# (field, Chinese label, English label), in the order printed.
FIELDS = (
    ("receipt_no", "凭证号", "Receipt no."),
    ("order_no", "订单号", "Order no."),
    ("refund_no", "退款单号", "Refund no."),
    ("learner", "学员", "Learner"),
    ("channel", "支付方式", "Paid by"),
    ("channel_trade_no", "渠道交易号", "Channel trade no."),
    ("channel_refund_no", "渠道退款单号", "Channel refund no."),
    ("paid_at", "支付时间", "Paid at"),
    ("refunded_at", "退款时间", "Refunded at"),
    ("platform", "平台", "Platform"),
    ("balance_fen", "其中余额", "Of which balance"),
    ("bonus_fen", "赠送金额", "Bonus credited"),
    ("key_id", "签名密钥", "Key id"),
)
MONEY_FIELDS = ("balance_fen", "bonus_fen")  # integer fen, printed in yuan
QR_MODULE = 0.9 * mm


def _qr(canvas: Canvas, text: str, left: float, top: float) -> float:
    """Draw the QR code of ``text`` with its top-left corner at (left, top); its size."""
    matrix = qr_matrix(text)
    canvas.setFillColorRGB(0, 0, 0)
    for row_index, row in enumerate(matrix):
        for column_index, dark in enumerate(row):
            if dark:
                canvas.rect(left + column_index * QR_MODULE, top - (row_index + 1) * QR_MODULE,
                            QR_MODULE, QR_MODULE, stroke=0, fill=1)
    return len(matrix) * QR_MODULE


class _Page:
    """A top-down writer over the canvas that starts a new page when one is full."""

    def __init__(self, canvas: Canvas, font_name: str) -> None:
        self.canvas, self.font_name = canvas, font_name
        self.width, self.height = A4
        self.left, self.right = 20 * mm, self.width - 20 * mm
        self.y = self.height - 25 * mm
        self.size = 10.0

    def font(self, name: str, size: float) -> None:
        self.canvas.setFont(name, size)
        self.font_name, self.size = name, size

    def room(self, needed: float) -> None:
        if self.y - needed < 20 * mm:
            self.canvas.showPage()  # a new page starts in reportlab's default font
            self.canvas.setFont(self.font_name, self.size)
            self.y = self.height - 25 * mm

    def line(self, text: str, step: float = 6 * mm, indent: float = 0, right: str | None = None) -> None:
        self.room(step)
        self.canvas.drawString(self.left + indent, self.y, text)
        if right is not None:
            self.canvas.drawRightString(self.right, self.y, right)
        self.y -= step


def receipt_pdf(fields: dict[str, Any], sha256: str, signature: str, verify_url: str,
                font_path: str | None = None) -> bytes:
    """A4 pages. ``fields`` is the receipt as signed; nothing printed adds to it but
    the hash, the signature and where to check them."""
    font = statement_font(font_path)
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=True)
    canvas.setTitle(str(fields["receipt_no"]))
    page = _Page(canvas, font.name)
    title_zh, title_en = TITLES[fields["kind"]]
    page.font(font.name, 16)
    page.line(f"{title_zh} {title_en}", step=12 * mm)
    page.font(font.name, 10)
    for name, label_zh, label_en in FIELDS:
        if fields.get(name) is not None:
            page.room(6 * mm)
            value = fields[name]
            shown = f"¥{format_yuan(value)}" if name in MONEY_FIELDS else str(value)
            canvas.drawString(page.left + 55 * mm, page.y, shown)
            page.line(f"{label_zh} {label_en}")
    page.y -= 4 * mm
    page.line("项目 Items")
    for item in fields["items"]:
        page.line(str(item["title"]), indent=5 * mm, right=f"¥{format_yuan(item['amount_fen'])}")
    page.font(font.name, 12)
    page.line(f"金额 Amount ({fields['currency']})", step=12 * mm, right=f"¥{format_yuan(fields['amount_fen'])}")
    page.font("Courier", 8)
    page.line(f"SHA-256: {sha256}")
    page.line("Signature (RSA-2048, PKCS#1 v1.5, SHA-256, base64):", step=4 * mm)
    for part in textwrap.wrap(signature, 88):
        page.line(part, step=4 * mm)
    page.y -= 4 * mm
    size = len(qr_matrix(signature)) * QR_MODULE
    page.room(size + 10 * mm)
    _qr(canvas, signature, page.left, page.y)
    page.y -= size + 6 * mm
    page.font(font.name, 9)
    canvas.linkURL(verify_url, (page.left, page.y - 2, page.right, page.y + 9), relative=0)
    page.line(f"验证 Verify: {verify_url}")
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
