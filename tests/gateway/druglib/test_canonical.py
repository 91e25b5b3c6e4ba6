"""Canonical bytes: independent of layout and key order, never changing a number."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.druglib import LibraryUnreadable, load_library_bytes
from gateway.druglib.canonical import canonical_bytes
from tests.gateway.druglib.conftest import EXAMPLE

_numbers = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).map(lambda d: format(d, "f")),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: str(d).replace("+", "")),
)
_scalars = st.one_of(st.none(), st.booleans(), st.text(max_size=12), _numbers.map(lambda t: ("num", t)))
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20,
)


def _render(value, rnd: st.DataObject, indent: bool) -> str:
    """Write a JSON text by hand so numbers appear exactly as generated, keys in random order."""
    if isinstance(value, tuple):
        return value[1]
    if isinstance(value, dict):
        keys = rnd.draw(st.permutations(list(value)))
        sep = ",\n  " if indent else ","
        return (
            "{"
            + sep.join(json.dumps(k) + (" : " if indent else ":") + _render(value[k], rnd, indent) for k in keys)
            + "}"
        )
    if isinstance(value, list):
        return "[" + (" , " if indent else ",").join(_render(v, rnd, indent) for v in value) + "]"
    return json.dumps(value)


@settings(max_examples=200, deadline=None)
@given(value=_json, rnd=st.data())
def test_layout_and_key_order_do_not_change_the_canonical_bytes(value, rnd):
    a = canonical_bytes(_render(value, rnd, False).encode())
    b = canonical_bytes(_render(value, rnd, True).encode())
    assert a == b
    assert canonical_bytes(a) == a  # idempotent


@settings(max_examples=200, deadline=None)
@given(value=_json, rnd=st.data())
def test_every_number_keeps_its_exact_decimal_value(value, rnd):
    text = _render(value, rnd, True)
    original = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    assert json.loads(canonical_bytes(text.encode()), parse_float=Decimal, parse_int=Decimal) == original


def test_number_text_is_kept_verbatim_so_limits_never_change():
    assert canonical_bytes(b'{"b": 1.50, "a": [2E3, -0.000001, 10]}') == b'{"a":[2E3,-0.000001,10],"b":1.50}'


def test_the_example_library_loads_identically_from_its_canonical_bytes():
    data = EXAMPLE.read_bytes()
    a = load_library_bytes(data, path=EXAMPLE).library
    b = load_library_bytes(canonical_bytes(data), path=EXAMPLE).library
    assert a == b


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b'{"a": NaN}', "NaN is not a number"),
        (b'\xef\xbb\xbf{"a": 1}', "byte-order mark"),
        (b'{"a": "\xff"}', "not UTF-8 text (byte offset 7)"),
        (b'{"a": [1, 2', "JSON syntax error"),
    ],
)
def test_ambiguous_or_broken_json_is_refused_with_the_reason(data, reason):
    with pytest.raises(LibraryUnreadable) as info:
        canonical_bytes(data, where="lib.json")
    assert reason in str(info.value) and "lib.json" in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_canonical_bytes_or_a_library_error(data):
    try:
        canonical = canonical_bytes(data)
    except LibraryUnreadable:
        return
    assert canonical_bytes(canonical) == canonical  # canonical output is its own canonical form


def test_deeply_nested_json_is_refused_not_a_crash():
    with pytest.raises(LibraryUnreadable, match="nested too deeply"):
        canonical_bytes(b"[" * 100_000 + b"]" * 100_000)
