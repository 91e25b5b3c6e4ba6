"""Alaris-style reply content (reference §3.5): INF record, echo check, value replies."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.alaris import codec
from drivers.alaris.framing import FrameDecoder, encode_frame
from drivers.errors import FrameError
from drivers.model import ChannelState, Quantity

ILLUSTRATIVE_INF = "!INF^8002-51740^-^SET^5.00^ml/h^^1.234^ml^17.91^mmHg^24+^EVENT^127904|BBAA\r"


def test_illustrative_inf_reply_parses_all_fields_with_the_crc_split_off_first():
    (frame,) = FrameDecoder().feed(ILLUSTRATIVE_INF.encode())
    record = codec.parse_inf(frame.body)
    assert record.serial_number == "8002-51740"
    assert record.rate == Quantity(Decimal("5.00"), "mL/h")
    assert record.volume_infused == Quantity(Decimal("1.234"), "mL")
    assert (record.alarm_notification, record.mode, record.time_remaining) == ("-", "SET", "24+")
    assert record.log_entry == "127904"  # whole, not cut to its first character ([O5]'s bug)
    assert record.state is ChannelState.UNKNOWN  # "SET" is not a known delivery state (§3.5 U)


def test_reply_echoing_another_command_is_an_echo_mismatch():
    with pytest.raises(codec.EchoMismatch) as caught:
        codec.parse_single(b"COMMS_PROTOCOL^Asena Rev 2.1.5", "INST_SERIALNO")
    assert (caught.value.expected, caught.value.got) == ("INST_SERIALNO", "COMMS_PROTOCOL")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"INF^1^-^SET^5.00^ml/h^^1.234^ml", "fields"),
        (b"INF^8002-51740^-^SET^fast^ml/h^^1.234^ml^17.91^mmHg^24+^EVENT^1", "decimal number"),
        (b"INF^8002-51740^-^SET^5.00^l/min^^1.234^ml^17.91^mmHg^24+^EVENT^1", "unit"),
    ],
)
def test_malformed_inf_records_are_frame_errors(body, match):
    with pytest.raises(FrameError, match=match):
        codec.parse_inf(body)


def test_inst_serialno_needs_exactly_one_field():
    assert codec.parse_single(b"INST_SERIALNO^8002-51740", "INST_SERIALNO") == "8002-51740"
    with pytest.raises(FrameError, match="exactly one"):
        codec.parse_single(b"INST_SERIALNO^8002^51740", "INST_SERIALNO")


def test_vtbi_reply_field_two_is_the_volume_and_empty_means_none():
    assert codec.parse_vtbi(b"INF_VTBI^ACTIV^11.000^ml^STOP") == Quantity(Decimal("11.000"), "mL")
    assert codec.parse_vtbi(b"INF_VTBI^DEACT^^ml^") is None
    with pytest.raises(FrameError, match="at least 4"):
        codec.parse_vtbi(b"INF_VTBI^ACTIV^11.000")


def test_alarm_reply_and_unknown_codes_are_kept_as_unknown_kind():
    assert not codec.parse_alarm(b"ALARM^AL_NOALM^ ^ ").active
    assert codec.alarm_kind("AL_OCCLUSION") == "occlusion"
    assert codec.alarm_kind("AL_SOMETHING_NEW") == "unknown"


_decimals = st.decimals(min_value=0, max_value=9999, places=3, allow_nan=False, allow_infinity=False)


@given(
    serial=st.from_regex(r"[0-9]{4}-[0-9]{5}", fullmatch=True),
    mode=st.sampled_from(sorted(codec.MODE_STATES)),
    rate=_decimals,
    volume=_decimals,
)
def test_inf_record_round_trips_through_frame_and_parser(serial, mode, rate, volume):
    record = codec.InfRecord(
        serial, "-", mode, Quantity(rate, "mL/h"), Quantity(volume, "mL"), "17.91 mmHg", "24+", "EVENT", "1"
    )
    (frame,) = FrameDecoder().feed(encode_frame(codec.format_inf(record)))
    parsed = codec.parse_inf(frame.body)
    assert parsed.rate.value == rate.quantize(Decimal("0.01"))
    assert parsed.volume_infused.value == volume.quantize(Decimal("0.001"))
    assert (parsed.serial_number, parsed.state) == (serial, codec.MODE_STATES[mode])


@given(st.binary(max_size=80))
def test_arbitrary_reply_bodies_raise_frame_errors_or_parse_never_anything_else(body):
    for parse in (codec.parse_inf, codec.parse_vtbi, codec.parse_alarm):
        try:
            result = parse(body)
        except FrameError as exc:
            assert str(exc)  # a specific error that says what is wrong
        else:
            assert result is not None
