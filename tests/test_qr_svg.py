"""The pay page's QR code (app/checkout/qr.py): python-qrcode's symbol, module for module,
drawn as one SVG path of horizontal runs; it decodes back to the text it was made from.

Decoding renders the SVG with librsvg (a real SVG renderer, installed with chromium by
scripts/system-packages) through ctypes and reads the PNG with zbarimg, as the browser
journeys read their screenshots.
"""
from __future__ import annotations

import ctypes
import random
import re
import shutil
import string
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import qrcode

from app.checkout.qr import qr_matrix, qr_svg

SVG = "{http://www.w3.org/2000/svg}"
SHORT_URL = "http://127.0.0.1:5000/gateway/alipay/qr/" + "Xy3_kP9aQ2mN7vB1cD5eFg"
# Longer than any channel's QR: a version-10 symbol, past version 7's version blocks.
LONG_URL = "https://qr.alipay.com/bax" + "09876abcdefghijklmnopqrstuvwxyz" * 6 + "?t=" + "7" * 40
WECHAT_URL = "weixin://wxpay/bizpayurl?pr=AbCdEfG"
TOTP_URI = (
    "otpauth://totp/CourseCashier:finance%40example.com?secret=ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    "&issuer=CourseCashier"
)
TEXTS = [SHORT_URL, LONG_URL, WECHAT_URL, TOTP_URI, "a", "1234567890" * 30, "课程付款" * 20]


def library_matrix(text: str) -> list[list[bool]]:
    """What the page showed before: the library's own encoder and mask choice."""
    symbol = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
    symbol.add_data(text)
    symbol.make(fit=True)
    return symbol.get_matrix()


def sample_texts(count: int) -> list[str]:
    """Seeded texts of every length up to a version-16 symbol, in each encoding mode."""
    alphabets = [string.printable, string.digits, string.ascii_uppercase + " $%*+-./:",
                 string.ascii_letters + "/:._-?=&%", "你好世界支付课程"]
    chooser = random.Random(20261124)
    return [
        "".join(chooser.choice(alphabet) for _ in range(chooser.randint(1, 300)))
        for alphabet in (chooser.choice(alphabets) for _ in range(count))
    ]


@pytest.mark.parametrize("text", TEXTS + sample_texts(120))
def test_the_symbol_is_python_qrcodes_module_for_module(text):
    assert qr_matrix(text) == library_matrix(text)


def drawn_modules(svg: str) -> tuple[int, set[tuple[int, int]]]:
    """The width (in modules) and the (row, column) of every module the path covers."""
    root = ElementTree.fromstring(svg)
    [path] = root.iter(f"{SVG}path")
    width = int(root.get("viewBox").split()[2])
    covered: set[tuple[int, int]] = set()
    drawn = path.get("d")
    runs = re.findall(r"M(\d+),(\d+)h(\d+)v1h-(\d+)z", drawn)
    assert "".join(f"M{x},{y}h{w}v1h-{back}z" for x, y, w, back in runs) == drawn
    for x, y, length, back in runs:
        assert length == back and int(length) > 0
        cells = {(int(y), int(x) + step) for step in range(int(length))}
        assert not cells & covered, "runs overlap"
        covered |= cells
    return width, covered


@pytest.mark.parametrize("text", TEXTS)
def test_the_svg_draws_each_dark_module_once_in_runs_of_a_row(text):
    matrix = library_matrix(text)
    width, covered = drawn_modules(str(qr_svg(text)))
    assert width == len(matrix)
    assert covered == {(r, c) for r, line in enumerate(matrix) for c, dark in enumerate(line) if dark}
    # One rectangle per maximal run of a row, not one per module.
    runs = sum(len(re.findall("1+", "".join("1" if dark else "0" for dark in line))) for line in matrix)
    assert str(qr_svg(text)).count("M") == runs < len(covered)


@pytest.mark.parametrize("text", [SHORT_URL, LONG_URL, TOTP_URI])
def test_the_svg_is_well_formed_and_holds_nothing_but_one_path(text):
    svg = str(qr_svg(text))
    root = ElementTree.fromstring(svg)  # raises on anything not well-formed
    assert root.tag == f"{SVG}svg"
    assert [element.tag for element in root.iter()] == [f"{SVG}svg", f"{SVG}path"]
    assert root.get("viewBox") == f"0 0 {len(library_matrix(text))} {len(library_matrix(text))}"
    attributes = {name for element in root.iter() for name in element.attrib}
    assert not {name for name in attributes if name.lower().startswith("on") or "href" in name}
    assert "<script" not in svg.lower() and "<?xml" not in svg


class Rasterizer:
    """librsvg through ctypes: an SVG document → a PNG file, drawn on white."""

    def __init__(self) -> None:
        self.rsvg = ctypes.CDLL("librsvg-2.so.2")
        self.cairo = ctypes.CDLL("libcairo.so.2")
        self.gobject = ctypes.CDLL("libgobject-2.0.so.0")
        pointer = ctypes.c_void_p
        self.rsvg.rsvg_handle_new_from_data.restype = pointer
        self.rsvg.rsvg_handle_new_from_data.argtypes = [ctypes.c_char_p, ctypes.c_size_t, pointer]
        self.rsvg.rsvg_handle_render_document.argtypes = [pointer, pointer, ctypes.POINTER(Viewport), pointer]
        self.cairo.cairo_image_surface_create.restype = pointer
        self.cairo.cairo_image_surface_create.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.cairo.cairo_create.restype = pointer
        self.cairo.cairo_create.argtypes = [pointer]
        self.cairo.cairo_set_source_rgb.argtypes = [pointer] + [ctypes.c_double] * 3
        self.cairo.cairo_paint.argtypes = [pointer]
        self.cairo.cairo_surface_write_to_png.argtypes = [pointer, ctypes.c_char_p]
        self.cairo.cairo_destroy.argtypes = [pointer]
        self.cairo.cairo_surface_destroy.argtypes = [pointer]
        self.gobject.g_object_unref.argtypes = [pointer]

    def png(self, svg: str, target: Path, pixels: int) -> None:
        data = svg.encode("utf-8")
        handle = self.rsvg.rsvg_handle_new_from_data(data, len(data), None)
        assert handle, "librsvg refused the SVG"
        surface = self.cairo.cairo_image_surface_create(0, pixels, pixels)  # CAIRO_FORMAT_ARGB32
        context = self.cairo.cairo_create(surface)
        try:
            self.cairo.cairo_set_source_rgb(context, 1.0, 1.0, 1.0)
            self.cairo.cairo_paint(context)
            viewport = Viewport(0, 0, pixels, pixels)
            assert self.rsvg.rsvg_handle_render_document(handle, context, ctypes.byref(viewport), None)
            assert self.cairo.cairo_surface_write_to_png(surface, str(target).encode()) == 0
        finally:
            self.cairo.cairo_destroy(context)
            self.cairo.cairo_surface_destroy(surface)
            self.gobject.g_object_unref(handle)


class Viewport(ctypes.Structure):
    _fields_ = [(name, ctypes.c_double) for name in ("x", "y", "width", "height")]


@pytest.fixture(scope="module")
def rasterizer() -> Rasterizer:
    if shutil.which("zbarimg") is None:
        pytest.skip("zbarimg is missing: scripts/system-packages installs zbar-tools")
    try:
        return Rasterizer()
    except OSError:
        pytest.skip("librsvg/cairo are missing: scripts/system-packages installs them with chromium")


@pytest.mark.parametrize("text", [SHORT_URL, LONG_URL, WECHAT_URL], ids=["short_url", "long_url", "wechat_url"])
@pytest.mark.parametrize("pixels", [260, 600])
def test_the_svg_decodes_back_to_the_text(rasterizer, tmp_path, text, pixels):
    """260 px is the size the page's CSS shows it at."""
    png = tmp_path / "qr.png"
    rasterizer.png(str(qr_svg(text)), png, pixels)
    result = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"zbarimg read no QR code (exit {result.returncode}): {result.stderr}"
    assert result.stdout.rstrip("\n") == text
