"""The one strict number parser every driver uses (drivers/values.py)."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.values import NumberSpec, ValueRejected, ValueWarnings, parse_number

RATE = NumberSpec("rate", Decimal(0), Decimal("9999.99"), places=2, int_digits=4)
SIGNED = NumberSpec("offset", Decimal(-100), Decimal(100), places=1, int_digits=3, signed=True)


@given(st.one_of(st.text(max_size=40), st.binary(max_size=40)))
def test_any_input_is_a_number_in_range_or_value_rejected_never_another_exception(raw):
    try:
        value = parse_number(raw, RATE)
    except ValueRejected as exc:
        assert exc.field == "rate" and len(str(exc)) < 200
        return
    assert value.is_finite() and Decimal(0) <= value <= Decimal("9999.99")
    assert -value.as_tuple().exponent <= 2


@given(st.decimals(min_value=0, max_value=Decimal("9999.99"), places=2))
def test_every_documented_value_reads_back_exactly(value):
    assert parse_number(f"{value:f}", RATE) == value


@pytest.mark.parametrize(
    "raw",
    ["NaN", "Infinity", "1E+999999", "1e3", "1_000", "-5", "+5", " 5", "5 ", "٣", "", ".", "10000", "1.234", "0x10"],
)
def test_what_once_escaped_is_rejected(raw):
    with pytest.raises(ValueRejected):
        parse_number(raw, RATE)


@pytest.mark.parametrize("raw, expected", [("5", "5"), ("5.", "5"), (".5", "0.5"), ("0005.25", "5.25")])
def test_the_forms_pumps_print_are_accepted(raw, expected):
    assert parse_number(raw, RATE) == Decimal(expected)


def test_sign_only_where_the_field_allows_it():
    assert parse_number("-12.5", SIGNED) == Decimal("-12.5")
    with pytest.raises(ValueRejected, match="sign"):
        parse_number("-12.5", RATE)


def test_a_rejected_megabyte_value_makes_one_short_warning_and_repeats_are_counted(caplog):
    caplog.set_level(logging.WARNING, "test.values")
    warnings = ValueWarnings(logging.getLogger("test.values"))
    huge = "9" * 1_000_000
    for _ in range(5):
        try:
            parse_number(huge, RATE)
        except ValueRejected as exc:
            warnings.rejected("bed07", exc)
    (record,) = caplog.records
    assert "bed07" in record.getMessage() and "rate" in record.getMessage()
    assert len(record.getMessage()) < 300
