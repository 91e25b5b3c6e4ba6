"""ER7 primitives: escaping round trips, timestamps with offsets, numbers as the pump showed them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import hl7
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.pcd.er7 import unescape
from gateway.hl7 import Hl7EncodeError
from gateway.hl7.er7 import dtm, escape, number


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_escaped_text_has_no_delimiter_or_control_and_unescapes_to_the_stripped_text(text):
    escaped = escape(text)
    assert not set(escaped) & set("|^~&\r\n")
    assert unescape(escaped) == text.strip()


@given(st.text(alphabet=st.sampled_from("|^~\\&\r\n\x07abc é"), max_size=30))
def test_the_independent_hl7_package_unescapes_our_escaping_to_the_same_text(text):
    container = hl7.parse("MSH|^~\\&|X\rOBX|1|ST|x||" + escape(text))
    assert container.unescape(str(container.segment("OBX")[5])) == text.strip()


def test_delimiters_use_the_hl7_escape_sequences():
    assert escape("a|b^c~d\\e&f") == "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f"


def test_timestamps_are_utc_with_offset_and_naive_ones_are_refused():
    moment = datetime(2015, 10, 15, 13, 21, 6, 123456, tzinfo=timezone(timedelta(hours=-5)))
    assert dtm(moment, what="OBX-14") == "20151015182106.1234+0000"
    with pytest.raises(Hl7EncodeError) as info:
        dtm(datetime(2015, 10, 15), what="OBX-14")
    assert info.value.field == "OBX-14"
    assert dtm(datetime(999, 1, 1, tzinfo=UTC), what="x").startswith("0999")


@pytest.mark.parametrize(
    ("value", "text"),
    [("250.0", "250.0"), ("5.00", "5.00"), ("1E+3", "1000"), ("0.000001", "0.000001"), ("-0.0", "0.0")],
)
def test_numbers_keep_the_device_precision_without_exponents(value, text):
    assert number(Decimal(value), what="x") == text


def test_non_finite_numbers_are_refused():
    with pytest.raises(Hl7EncodeError):
        number(Decimal("NaN"), what="MDC_FLOW_FLUID_PUMP")
