"""The JSON position walker finds every value of any document, on the right line."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from common.diagnostics import line_for
from common.jsonpos import value_lines

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=25,
)


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, (*prefix, i))


@given(doc=documents, indent=st.sampled_from([None, 0, 2]))
def test_every_value_of_a_document_gets_the_line_it_starts_on(doc, indent):
    text = json.dumps(doc, indent=indent)
    lines = value_lines(text)
    expected = set(paths(doc))
    assert set(lines) == expected
    rows = text.splitlines()
    for path in expected:
        if path and isinstance(path[-1], str):
            assert json.dumps(path[-1]) in rows[lines[path] - 1]


def test_line_for_falls_back_to_the_nearest_ancestor():
    lines = value_lines('{\n  "a": {\n    "b": 1\n  }\n}')
    assert line_for(lines, ("a", "b")) == 3
    assert line_for(lines, ("a", "missing", 4)) == 2
