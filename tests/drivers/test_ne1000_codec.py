"""NE-1000 reply data and values (reference §2.3, §2.7, §2.8)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import FrameError
from drivers.model import Quantity
from drivers.ne1000 import codec
from drivers.ne1000.codec import Reply


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (b"00S", Reply(0, "S")),
        (b"0I", Reply(0, "I")),  # one-digit address: allowed by the manual's syntax (§2.3)
        (b"07P", Reply(7, "P")),
        (b"00I15.40MH", Reply(0, "I", data="15.40MH")),
        (b"00A?R", Reply(0, "A", alarm="R")),
        (b"12A?S", Reply(12, "A", alarm="S")),
        (b"00A?T", Reply(0, "A", alarm="T")),
        (b"00A?E", Reply(0, "A", alarm="E")),
        (b"00A?O", Reply(0, "A", alarm="O")),
        (b"00S?", Reply(0, "S", error="")),
        (b"00S?NA", Reply(0, "S", error="NA")),
        (b"00I?OOR", Reply(0, "I", error="OOR")),
        (b"00S?COM", Reply(0, "S", error="COM")),
        (b"00T?IGN", Reply(0, "T", error="IGN")),
    ],
)
def test_reply_is_parsed_into_address_status_alarm_error_and_data(data, reply):
    assert codec.parse_reply(data) == reply


@pytest.mark.parametrize(
    ("data", "offset"),
    [(b"", 0), (b"S", 0), (b"00Q", 2), (b"00A?Z", 2), (b"00AR", 2), (b"00S?XYZ", 3), (b"00\xffS", 2), (b"123S", 0)],
)
def test_malformed_reply_is_a_frame_error_at_the_offending_offset(data, offset):
    with pytest.raises(FrameError) as caught:
        codec.parse_reply(data)
    assert caught.value.offset == offset


@pytest.mark.parametrize(
    ("data", "quantity"),
    [
        ("15.40MH", Quantity(Decimal("15.40"), "mL/h")),
        ("1.5MM", Quantity(Decimal("1.5"), "mL/min")),
        ("500.0UM", Quantity(Decimal("500.0"), "uL/min")),
        ("12UH", Quantity(Decimal("12"), "uL/h")),  # the manual also allows no point (§2.8)
        (".5MH", Quantity(Decimal("0.5"), "mL/h")),
        ("5.MH", Quantity(Decimal("5"), "mL/h")),
    ],
)
def test_rate_keeps_the_pumps_digits_and_unit(data, quantity):
    assert codec.parse_rate(data) == quantity


@pytest.mark.parametrize("data", ["", "15.40", "15.40ML", "15.40 MH", "1.2.3MH", "12345MH", "1.2345MH", "-1MH"])
def test_malformed_rate_is_a_frame_error(data):
    with pytest.raises(FrameError):
        codec.parse_rate(data)


def test_volume_dispensed_and_diameter_and_direction_parse():
    assert codec.parse_volume("250.0ML") == Quantity(Decimal("250.0"), "mL")
    assert codec.parse_volume("0.500UL") == Quantity(Decimal("0.500"), "uL")
    assert codec.parse_dispensed("I1.234W0.000ML") == (
        Quantity(Decimal("1.234"), "mL"),
        Quantity(Decimal("0.000"), "mL"),
    )
    assert codec.parse_diameter("26.59") == Quantity(Decimal("26.59"), "mm")
    assert codec.parse_direction("INF") == "INF"
    assert codec.parse_direction("WDR") == "WDR"


@pytest.mark.parametrize(
    ("call", "data"),
    [
        (codec.parse_volume, "250.0MH"),
        (codec.parse_dispensed, "I1.0ML"),
        (codec.parse_dispensed, "I1.0W2.0MH"),
        (codec.parse_diameter, "26.59MM"),
        (codec.parse_direction, "REV"),
        (codec.parse_version, "NE1000"),
    ],
)
def test_value_of_the_wrong_shape_is_a_frame_error(call, data):
    with pytest.raises(FrameError):
        call(data)


def test_version_gives_model_and_firmware():
    version = codec.parse_version("NE1000V3.928")
    assert (version.model, version.firmware) == ("NE-1000", "3.928")
    assert codec.parse_version("NE500X2V2.1").firmware == "2.1 X2"
    assert codec.parse_version("NE4000XV1.05").upgrade == ""


@pytest.mark.parametrize(
    ("value", "text"),
    [("15.4", "15.40"), ("250", "250.0"), ("0.5", "0.500"), ("9999.9", "9999."), ("1.2345", "1.234"), ("0", "0.000")],
)
def test_float_is_printed_with_four_digits_and_always_a_point(value, text):
    assert codec.format_float(Decimal(value)) == text


def test_float_the_pump_cannot_show_is_refused():
    with pytest.raises(ValueError):
        codec.format_float(Decimal("10000"))


decimals = st.decimals(min_value=0, max_value=Decimal("9999.999"), places=3, allow_nan=False)


@given(decimals, st.sampled_from(sorted(codec.RATE_UNITS)))
def test_formatted_rate_parses_back_within_the_pumps_precision(value, units):
    parsed = codec.parse_rate(codec.format_quantity(value, units))
    assert parsed.unit == codec.RATE_UNITS[units]
    assert Decimal(0) <= value - parsed.value < Decimal("0.001") * max(1, 10 ** (len(str(int(value))) - 1))


@given(decimals, decimals, st.sampled_from(sorted(codec.VOLUME_UNITS)))
def test_formatted_dispensed_volume_parses_back(infused, withdrawn, units):
    got_infused, got_withdrawn = codec.parse_dispensed(codec.format_dispensed(infused, withdrawn, units))
    assert got_infused.value <= infused and got_withdrawn.value <= withdrawn


@given(st.binary(max_size=40))
def test_reply_parser_raises_only_frame_error_on_any_bytes(data):
    try:
        codec.parse_reply(data)
    except FrameError:
        pass


@given(st.text(max_size=30))
def test_value_parsers_raise_only_frame_error_on_any_text(text):
    for parse in (
        codec.parse_rate,
        codec.parse_volume,
        codec.parse_dispensed,
        codec.parse_version,
        codec.parse_diameter,
        codec.parse_direction,
    ):
        try:
            result = parse(text)
        except FrameError as exc:
            assert str(exc)  # a specific error that says what is wrong
        else:
            assert result is not None


@given(st.integers(0, 99), st.sampled_from(sorted(codec.STATUS_MEANINGS)), st.from_regex(r"\A[A-Z0-9.]{0,12}\Z"))
def test_format_reply_and_parse_reply_round_trip(address, status, data):
    reply = Reply(address, status, data=data)
    assert codec.parse_reply(codec.format_reply(reply).encode()) == reply
