"""The SVG charts: valid XML for any input, text escaped, degenerate data rendered, markers drawn."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from fleet.web.svg import Series, bar_chart, heat_map, line_chart

NS = "{http://www.w3.org/2000/svg}"
any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
sane_float = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
label = st.text(max_size=30)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def numbers_in(root: ET.Element) -> list[str]:
    attrs = ("x", "y", "x1", "x2", "y1", "y2", "width", "height", "cx", "cy")
    out = [el.get(a) for el in root.iter() for a in attrs if el.get(a) is not None]
    out += [p for el in root.iter(f"{NS}polyline") for pt in el.get("points", "").split() for p in pt.split(",")]
    return out


def assert_no_bad_numbers(root: ET.Element) -> None:
    for value in numbers_in(root):
        assert math.isfinite(float(value)), value


@given(st.lists(st.tuples(label, st.lists(st.tuples(any_float, any_float), max_size=8)), max_size=4), label)
def test_line_chart_is_valid_svg_for_any_points(raw, title):
    root = parse(line_chart([Series(n, p) for n, p in raw], title=title, markers=(80, 100)))
    assert_no_bad_numbers(root)
    shown = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]", "\ufffd", title)
    assert root.find(f"{NS}title").text == (shown or None)
    assert root.get("aria-label") == shown


@given(st.lists(st.tuples(label, any_float), max_size=12), label)
def test_bar_chart_is_valid_svg_for_any_values(bars, title):
    root = parse(bar_chart(bars, title=title))
    assert_no_bad_numbers(root)
    drawn = [el for el in root.iter(f"{NS}rect") if el.get("class") == "bar"]
    assert len(drawn) == sum(1 for _, v in bars if math.isfinite(v) and abs(v) < 1e15)


@given(
    st.lists(label, max_size=5, unique=True),
    st.lists(label, max_size=6, unique=True),
    st.dictionaries(st.tuples(label, label), any_float, max_size=10),
)
def test_heat_map_is_valid_svg_with_one_cell_per_row_and_column(rows, cols, values):
    root = parse(heat_map(rows, cols, values, title="alarms"))
    assert_no_bad_numbers(root)
    cells = [el for el in root.iter(f"{NS}rect") if el.get("class") == "cell"]
    assert len(cells) == (len(rows) * len(cols) if rows and cols else 0)


def test_markup_in_labels_is_escaped_not_interpreted():
    evil = "<script>alert(1)</script> & 'x' \"y\""
    svg = line_chart([Series(evil, [(0, 1), (1, 2)])], title=evil)
    assert "<script>" not in svg
    root = parse(svg)
    texts = [el.text for el in root.iter(f"{NS}text")]
    assert evil in texts
    assert root.get("aria-label") == evil
    assert "<script>" not in bar_chart([(evil, 3)], title=evil)
    assert "<script>" not in heat_map([evil], [evil], {(evil, evil): 1}, title=evil)


def test_empty_data_renders_a_no_data_note():
    for svg in (line_chart([], title="t"), bar_chart([], title="t"), heat_map([], ["0"], {}, title="t")):
        assert [el.text for el in parse(svg).iter(f"{NS}text")] == ["no data"]
    assert "no data" in line_chart([Series("a", [(math.nan, 1)])], title="t")


def test_uptake_markers_sit_at_80_and_100_percent_of_the_axis():
    root = parse(line_chart([Series("ICU", [(0, 0), (5, 85), (9, 100)])], title="uptake", y_max=100, markers=(80, 100)))
    markers = [el for el in root.iter(f"{NS}line") if el.get("class") == "marker"]
    assert len(markers) == 2
    y80, y100 = (float(m.get("y1")) for m in markers)
    plot_top, plot_bottom = 16, 300 - 36
    assert y100 == plot_top
    assert abs(y80 - (plot_bottom - 0.8 * (plot_bottom - plot_top))) < 0.1


def test_single_point_series_is_drawn_as_a_dot():
    root = parse(line_chart([Series("one", [(3, 50)])], title="t", y_max=100))
    assert len(list(root.iter(f"{NS}circle"))) == 1


def test_heat_map_darkest_cell_is_the_largest_value():
    root = parse(heat_map(["A", "B"], ["0", "1"], {("A", "0"): 1, ("B", "1"): 10}, title="t"))
    cells = {el.find(f"{NS}title").text: el.get("fill") for el in root.iter(f"{NS}rect") if el.get("class") == "cell"}
    assert cells["B 1: 10"] == "hsl(25, 90%, 40%)"
    assert cells["A 1: 0"] == "hsl(25, 90%, 97%)"
