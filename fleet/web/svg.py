"""Server-side SVG charts: pure functions from numbers to a self-contained ``<svg>`` string.

Why server-side SVG: the UI runs on ward PCs inside the hospital network, where no chart
library can be fetched from the internet and no JavaScript is wanted. An inline SVG needs
nothing but the page, prints well and scales. Every text that reaches the markup (ward names,
drug names, firmware strings all come from the field) is XML-escaped here, in one place.

Degenerate input is part of the contract: empty series, a single point, all-zero values, NaN
or infinity or magnitudes beyond 1e15 (skipped and never written as a coordinate), negative values (clamped to the
axis). Each chart then still renders valid SVG, with a "no data" note where nothing is left.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

# A colour-blind-safe palette (Okabe & Ito, "Color Universal Design"), cycled per series.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")

FONT = "font-family='sans-serif' font-size='11'"


@dataclass(frozen=True)
class Series:
    """One line: a name and (x, y) points; x in any unit the caption names (e.g. days)."""

    name: str
    points: Sequence[tuple[float, float]]


# Characters XML 1.0 forbids (C0 controls except tab/newline/CR, surrogates, U+FFFE/FFFF):
# field strings may carry them; they become U+FFFD instead of breaking the page.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _esc(text: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", text), {"\r": "&#13;"})


def _attr(text: str) -> str:
    return quoteattr(_NOT_XML.sub("\ufffd", text))


# Beyond this magnitude a value is not a count or a share but a corrupted field; it is skipped
# like NaN (a range of +-1e308 would overflow the scale arithmetic to infinity).
_LIMIT = 1e15


def _finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) and abs(v) < _LIMIT for v in values)


def _num(value: float) -> str:
    """A coordinate as short text; never 'nan' or 'inf' (callers filter those out)."""
    return f"{value:.1f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _text(x: float, y: float, content: str, *, anchor: str = "start", extra: str = "") -> str:
    return (
        f"<text x='{_num(x)}' y='{_num(y)}' text-anchor='{anchor}' {FONT}{(' ' + extra) if extra else ''}>"
        f"{_esc(content)}</text>"
    )


def _frame(width: int, height: int, title: str, body: list[str]) -> str:
    label = _attr(title)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label={label}>"
        f"<title>{_esc(title)}</title>" + "".join(body) + "</svg>"
    )


def _no_data(width: int, height: int, title: str) -> str:
    return _frame(width, height, title, [_text(width / 2, height / 2, "no data", anchor="middle", extra="fill='#666'")])


def _nice_max(value: float) -> float:
    """Round an axis maximum up to 1, 2 or 5 times a power of ten (readable gridlines)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        candidate = step * 10.0**exponent
        if candidate >= value:
            return candidate
    return 10.0 ** (exponent + 1)  # pragma: no cover - loop always returns


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    y_max: float | None = None,
    markers: Sequence[float] = (),
    width: int = 640,
    height: int = 300,
) -> str:
    """Lines over a shared x axis, with horizontal marker lines (e.g. 80 % and 100 % uptake)."""
    clean = [Series(s.name, [(x, y) for x, y in s.points if _finite(x, y)]) for s in series]
    clean = [s for s in clean if s.points]
    if not clean:
        return _no_data(width, height, title)
    left, right, top, bottom = 48, 150, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for s in clean for x, _ in s.points]
    x_min, x_max = min(xs), max(xs)
    if x_max == x_min:
        x_max = x_min + 1
    top_y = (
        y_max
        if y_max is not None and _finite(y_max) and y_max > 0
        else _nice_max(max([y for s in clean for _, y in s.points] + [m for m in markers if _finite(m)] + [0.0]))
    )

    def px(x: float) -> float:
        return left + (x - x_min) / (x_max - x_min) * plot_w

    def py(y: float) -> float:
        y = min(max(y, 0.0), top_y)
        return top + plot_h - y / top_y * plot_h

    body = [
        f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='#fafafa' stroke='#ccc'/>",
    ]
    for i in range(5):
        value = top_y * i / 4
        body.append(_text(left - 4, py(value) + 4, _num(round(value, 1)), anchor="end"))
    for i in range(5):
        value = x_min + (x_max - x_min) * i / 4
        body.append(_text(px(value), top + plot_h + 14, _num(round(value, 1)), anchor="middle"))
    for m in markers:
        if not _finite(m) or m < 0 or m > top_y:
            continue
        body.append(
            f"<line class='marker' x1='{left}' x2='{left + plot_w}' y1='{_num(py(m))}' y2='{_num(py(m))}' "
            "stroke='#c00' stroke-dasharray='4 3'/>"
        )
        body.append(_text(left + plot_w - 2, py(m) - 3, f"{_num(m)} %", anchor="end", extra="fill='#c00'"))
    for n, s in enumerate(clean):
        colour = PALETTE[n % len(PALETTE)]
        pts = sorted(s.points)
        path = " ".join(f"{_num(px(x))},{_num(py(y))}" for x, y in pts)
        body.append(f"<polyline class='series' fill='none' stroke='{colour}' stroke-width='2' points='{path}'/>")
        if len(pts) == 1:
            body.append(f"<circle cx='{_num(px(pts[0][0]))}' cy='{_num(py(pts[0][1]))}' r='3' fill='{colour}'/>")
        ly = top + 12 + n * 16
        body.append(f"<rect x='{width - right + 10}' y='{ly - 9}' width='10' height='10' fill='{colour}'/>")
        body.append(_text(width - right + 24, ly, s.name))
    if x_label:
        body.append(_text(left + plot_w / 2, height - 4, x_label, anchor="middle"))
    if y_label:
        body.append(
            _text(
                12,
                top + plot_h / 2,
                y_label,
                anchor="middle",
                extra=f"transform='rotate(-90 12 {_num(top + plot_h / 2)})'",
            )
        )
    return _frame(width, height, title, body)


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    width: int = 640,
    bar_height: int = 18,
) -> str:
    """Horizontal bars, one per label, longest scale = largest value (firmware spread, DERS)."""
    clean = [(label, max(value, 0.0)) for label, value in bars if _finite(value)]
    if not clean:
        return _no_data(width, 60, title)
    left, right = 200, 70
    plot_w = width - left - right
    height = 12 + len(clean) * (bar_height + 6)
    top_value = max(v for _, v in clean) or 1.0
    body = []
    for i, (label, value) in enumerate(clean):
        y = 6 + i * (bar_height + 6)
        w = value / top_value * plot_w
        body.append(_text(left - 6, y + bar_height - 5, label[:40], anchor="end"))
        body.append(
            f"<rect class='bar' x='{left}' y='{y}' width='{_num(w)}' height='{bar_height}' "
            f"fill='{PALETTE[0]}'><title>{_esc(label)}: {_num(value)}{_esc(unit)}</title></rect>"
        )
        body.append(_text(left + w + 4, y + bar_height - 5, f"{_num(value)}{unit}"))
    return _frame(width, height, title, body)


def heat_map(
    rows: Sequence[str],
    cols: Sequence[str],
    values: Mapping[tuple[str, str], float],
    *,
    title: str,
    cell: int = 22,
) -> str:
    """A rows x cols grid shaded by value (alarm load per ward and hour); empty cells are white."""
    if not rows or not cols:
        return _no_data(640, 60, title)
    left, top = 140, 24
    width = left + len(cols) * cell + 10
    height = top + len(rows) * cell + 10
    finite = [v for v in values.values() if _finite(v) and v > 0]
    top_value = max(finite) if finite else 1.0
    body = []
    for c, col in enumerate(cols):
        body.append(_text(left + c * cell + cell / 2, top - 6, col, anchor="middle"))
    for r, row in enumerate(rows):
        y = top + r * cell
        body.append(_text(left - 6, y + cell / 2 + 4, row[:24], anchor="end"))
        for c, col in enumerate(cols):
            value = values.get((row, col), 0.0)
            value = value if _finite(value) and value > 0 else 0.0
            share = value / top_value
            # White to dark orange: lightness falls with load (readable in greyscale print).
            shade = f"hsl(25, 90%, {_num(round(97 - share * 57, 1))}%)"
            body.append(
                f"<rect class='cell' x='{left + c * cell}' y='{y}' width='{cell - 1}' height='{cell - 1}' "
                f"fill='{shade}'><title>{_esc(row)} {_esc(col)}: {_num(value)}</title></rect>"
            )
    return _frame(width, height, title, body)
