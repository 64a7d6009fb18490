"""The QR code as inline SVG, drawn on the server (no scripts, no network images).

python-qrcode encodes the text (mode, version, error correction M, the codewords); the
modules are laid out here, each row of the symbol a bit field, so that scoring the eight
mask patterns (ISO/IEC 18004 §7.8.3, as the library scores them: every mask is tried,
the lowest penalty wins, the first on a tie) costs a few integer operations per rule
instead of a Python loop per module. The symbol is the library's, module for module
(tests/test_qr_svg.py compares them); only the time to make it changes.

The SVG draws each horizontal run of dark modules as one rectangle, in module units
(the border of 2 modules included), sized in millimetres as the library's SVG was; the
page's CSS sets its displayed size.
"""
from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Iterable

import qrcode
from markupsafe import Markup
from qrcode import util

ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M
BORDER = 2
MASKS = range(8)


@dataclass(frozen=True)
class _Layout:
    """What every symbol of one version shares. A matrix is an int: module (row r,
    column c) of an n × n symbol is bit r·n + c; the ``_t`` twins hold the transposed
    matrix (bit c·n + r), so columns are scored with the same row operations."""

    size: int
    full: int  # every module
    data: int  # the modules that carry (masked) data
    data_t: int
    scoring: int  # dark function modules as the library scores them (no format bits)
    scoring_t: int
    drawn: tuple[int, ...]  # dark function modules of the finished symbol, per mask
    masks: tuple[int, ...]  # each mask pattern's dark modules, over the whole symbol
    masks_t: tuple[int, ...]
    to_bits: operator.itemgetter  # placement-ordered bits (+ "0") → the matrix, MSB first
    to_bits_t: operator.itemgetter
    data_modules: int
    # Where a window may start so that it lies inside the symbol: two modules side by
    # side, five (a run), eleven (a finder-like pattern), and a 2 × 2 block.
    pair_starts: int
    run_starts: int
    finder_starts: int
    block_starts: int


def _symbol(version: int) -> qrcode.QRCode:
    """The library's function patterns of ``version``: finder, separator, alignment and
    timing modules set, every other module None."""
    symbol = qrcode.QRCode(version=version, error_correction=ERROR_CORRECTION)
    symbol.modules_count = size = version * 4 + 17
    symbol.modules = [[None] * size for _ in range(size)]
    symbol.setup_position_probe_pattern(0, 0)
    symbol.setup_position_probe_pattern(size - 7, 0)
    symbol.setup_position_probe_pattern(0, size - 7)
    symbol.setup_position_adjust_pattern()
    symbol.setup_timing_pattern()
    return symbol


def _with_format(version: int, test: bool, mask: int) -> list[list[bool | None]]:
    """The function modules with the format (and version) information of ``mask``;
    ``test`` leaves those bits light, as the library has them while it scores masks."""
    symbol = _symbol(version)
    symbol.setup_type_info(test, mask)
    if version >= 7:
        symbol.setup_type_number(test)
    return symbol.modules


def _placement(modules: list[list[bool | None]]) -> list[tuple[int, int]]:
    """The data modules in the order the codeword bits fill them (the library's
    `map_data`: two-column strips from the right, up and down in turn)."""
    size = len(modules)
    order: list[tuple[int, int]] = []
    row, step = size - 1, -1
    for col in range(size - 1, 0, -2):
        if col <= 6:
            col -= 1  # the vertical timing pattern is skipped
        while 0 <= row < size:
            for c in (col, col - 1):
                if modules[row][c] is None:
                    order.append((row, c))
            row += step
        row -= step
        step = -step
    return order


def _bits(cells: Iterable[tuple[int, int]], size: int, transposed: bool = False) -> int:
    """The matrix (or its transpose) whose dark modules are ``cells``."""
    digits = ["0"] * (size * size)
    for row, col in cells:
        digits[col * size + row if transposed else row * size + col] = "1"
    return int("".join(reversed(digits)), 2)


def _dark(modules: list[list[bool | None]]) -> list[tuple[int, int]]:
    return [(r, c) for r, line in enumerate(modules) for c, dark in enumerate(line) if dark]


def _every_row(row_bits: int, size: int, rows: int) -> int:
    """``row_bits`` in each of the first ``rows`` rows."""
    return sum(row_bits << (row * size) for row in range(rows))


@functools.lru_cache(maxsize=None)
def _layout(version: int) -> _Layout:
    scoring = _with_format(version, True, 0)
    size = len(scoring)
    order = _placement(scoring)
    index = {cell: i for i, cell in enumerate(order)}
    zero = len(order)  # the position of the "0" appended after the data bits
    # int(text, 2) reads the most significant bit first: the last module first.
    cells = [divmod(bit, size) for bit in range(size * size - 1, -1, -1)]
    to_bits = operator.itemgetter(*(index.get(cell, zero) for cell in cells))
    to_bits_t = operator.itemgetter(*(index.get((c, r), zero) for r, c in cells))
    masks = [util.mask_func(mask) for mask in MASKS]
    every = [(r, c) for r in range(size) for c in range(size)]
    row = (1 << size) - 1
    return _Layout(
        size=size,
        full=(1 << size * size) - 1,
        data=_bits(order, size),
        data_t=_bits(order, size, transposed=True),
        scoring=_bits(_dark(scoring), size),
        scoring_t=_bits(_dark(scoring), size, transposed=True),
        drawn=tuple(_bits(_dark(_with_format(version, False, mask)), size) for mask in MASKS),
        masks=tuple(_bits([cell for cell in every if test(*cell)], size) for test in masks),
        masks_t=tuple(_bits([cell for cell in every if test(*cell)], size, True) for test in masks),
        to_bits=to_bits,
        to_bits_t=to_bits_t,
        data_modules=len(order),
        pair_starts=_every_row(row >> 1, size, size),
        run_starts=_every_row(row >> 4, size, size),
        finder_starts=_every_row(row >> 10, size, size),
        block_starts=_every_row(row >> 1, size, size - 1),
    )


def _lines_penalty(matrix: int, layout: _Layout) -> int:
    """Rules 1 and 3 over every row of ``matrix`` (pass the transpose for columns).

    Rule 1: a run of L ≥ 5 same-coloured modules costs L − 2. Rule 3: each 1:1:3:1:1
    finder-like pattern with four light modules on one side (10111010000 or 00001011101)
    costs 40. ``x >> i`` moves column c + i onto column c; the masks keep only starts
    whose whole window lies in the row."""
    light = ~matrix & layout.full
    same = ~(matrix ^ (matrix >> 1)) & layout.pair_starts  # column c and c + 1 alike
    runs = same & (same >> 1) & (same >> 2) & (same >> 3) & layout.run_starts  # five alike from c
    # Each run of L ≥ 5 sets L − 4 bits of ``runs``; its lowest one marks the run.
    penalty = runs.bit_count() + 2 * (runs & ~(runs << 1)).bit_count()
    found = (
        (matrix >> 4) & (matrix >> 6) & (light >> 1) & (light >> 5) & (light >> 9)
        & (
            (matrix & (matrix >> 2) & (matrix >> 3) & (light >> 7) & (light >> 8) & (light >> 10))
            | (light & (light >> 2) & (light >> 3) & (matrix >> 7) & (matrix >> 8) & (matrix >> 10))
        )
        & layout.finder_starts
    )
    return penalty + 40 * found.bit_count()


def _penalty(matrix: int, transposed: int, layout: _Layout) -> int:
    size = layout.size
    penalty = _lines_penalty(matrix, layout) + _lines_penalty(transposed, layout)
    # Rule 2: each 2 × 2 block of one colour costs 3 (blocks overlap).
    below = matrix >> size
    rows_alike = ~(matrix ^ below)
    blocks = rows_alike & (rows_alike >> 1) & ~(matrix ^ (matrix >> 1)) & layout.block_starts
    penalty += 3 * blocks.bit_count()
    # Rule 4: 10 for every whole 5 % the dark share is away from half (float, as the library).
    percent = float(matrix.bit_count()) / (size**2)
    return penalty + int(abs(percent * 100 - 50) / 5) * 10


def qr_matrix(text: str) -> list[list[bool]]:
    """The symbol's modules, border included: the same as python-qrcode's
    ``QRCode(error_correction=M, border=2)`` with ``add_data(text)``, ``get_matrix()``."""
    layout, final = _encode(text)
    size = layout.size
    width = size + 2 * BORDER
    matrix = [[False] * width for _ in range(BORDER)]
    for row in range(size):
        bits = final >> (row * size)
        line = [bool(bits >> col & 1) for col in range(size)]
        matrix.append([False] * BORDER + line + [False] * BORDER)
    matrix += [[False] * width for _ in range(BORDER)]
    return matrix


def _encode(text: str) -> tuple[_Layout, int]:
    symbol = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=BORDER)
    symbol.add_data(text)
    version = symbol.best_fit()  # DataOverflowError past version 40, as before
    codewords = util.create_data(version, ERROR_CORRECTION, symbol.data_list)
    layout = _layout(version)
    bits = format(int.from_bytes(bytes(codewords), "big"), f"0{8 * len(codewords)}b")
    bits = bits.ljust(layout.data_modules, "0") + "0"
    data = int("".join(layout.to_bits(bits)), 2)
    data_t = int("".join(layout.to_bits_t(bits)), 2)
    best, best_penalty = 0, -1
    for mask in MASKS:
        penalty = _penalty(
            layout.scoring | ((data ^ layout.masks[mask]) & layout.data),
            layout.scoring_t | ((data_t ^ layout.masks_t[mask]) & layout.data_t),
            layout,
        )
        if best_penalty < 0 or penalty < best_penalty:
            best, best_penalty = mask, penalty
    return layout, layout.drawn[best] | ((data ^ layout.masks[best]) & layout.data)


def qr_svg(text: str) -> Markup:
    layout, final = _encode(text)
    size, row_mask = layout.size, (1 << layout.size) - 1
    width = size + 2 * BORDER
    path: list[str] = []
    for row in range(size):
        bits = (final >> (row * size)) & row_mask
        while bits:
            start = (bits & -bits).bit_length() - 1
            rest = bits >> start
            length = (~rest & (rest + 1)).bit_length() - 1  # the run of ones from start
            bits &= ~(((1 << length) - 1) << start)
            path.append(f"M{start + BORDER},{row + BORDER}h{length}v1h-{length}z")
    return Markup(
        f'<svg width="{width}mm" height="{width}mm" version="1.1" viewBox="0 0 {width} {width}"'
        ' xmlns="http://www.w3.org/2000/svg">'
        f'<path d="{"".join(path)}" id="qr-path" fill="#000000" fill-opacity="1"'
        ' fill-rule="nonzero" stroke="none" /></svg>'
    )
