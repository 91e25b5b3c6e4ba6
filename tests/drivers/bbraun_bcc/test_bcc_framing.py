"""BCC-style framing and records (reference §6.3, §6.5, §6.7, [D7]): vectors and properties."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.bbraun_bcc import codec
from drivers.bbraun_bcc.framing import (
    ACK,
    NAK,
    ChecksumError,
    DroppedBytes,
    Frame,
    FrameDecoder,
    LengthError,
    LinkControl,
    checksum,
    encode_frame,
)
from drivers.errors import FrameError

# §6.7, transcribed.
VECTORS = [
    ("1", b"ADMIN:ALIVE", b"\x0100031\x021/1/1>ADMIN:ALIVE\x0300061\x04"),
    ("1", b"MEM:GET", b"\x0100027\x021/1/1>MEM:GET\x0300039\x04"),
    ("1", b"ADMIN:VERSION", b"\x0100033\x021/1/1>ADMIN:VERSION\x0300244\x04"),
    ("1", b"MEM:GETSLOT#11", b"\x0100034\x021/1/1>MEM:GETSLOT#11\x0300236\x04"),
    ("1", b"12,50100,GNACK,0", b"\x0100036\x021/1/1>12,50100,GNACK,0\x0300159\x04"),
    (
        "1",
        b"12,50111,GNMODEL,688N030003\x1e12,50111,INRT,20.0",
        b"\x0100066\x021/1/1>12,50111,GNMODEL,688N030003\x1e12,50111,INRT,20.0\x0300042\x04",
    ),
]
STUFFED_ALIVE = b"\x0100031\x021/1/1>AEXMIN:ALIVEE\x0300061\x04"
_NAMES = {"SOH": b"\x01", "STX": b"\x02", "RS": b"\x1e", "ETB": b"\x17", "ETX": b"\x03", "EOT": b"\x04"}


def captured_frames() -> list[bytes]:
    text = (Path(__file__).parent / "captured_d7.txt").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return [re.sub(rb"<(SOH|STX|RS|ETB|ETX|EOT)>", lambda m: _NAMES[m[1].decode()], line.encode()) for line in lines]


@pytest.mark.parametrize(("bed", "data", "frame"), VECTORS)
def test_frame_matches_reference_vector(bed, data, frame):
    assert encode_frame(bed, data) == frame
    assert FrameDecoder().feed(frame) == [Frame(bed, data, True, 0)]


def test_stuffed_alive_matches_reference_vector_and_decodes():
    assert encode_frame("1", b"ADMIN:ALIVE", stuffing=True) == STUFFED_ALIVE
    assert FrameDecoder(stuffing=True).feed(STUFFED_ALIVE) == [Frame("1", b"ADMIN:ALIVE", True, 0)]


def test_first_two_captured_rack_frames_parse_with_every_record():
    first, second, _ = captured_frames()
    (one,) = FrameDecoder().feed(first)
    (two,) = FrameDecoder().feed(second)
    assert (one.bed_id, one.final, two.final) == ("ComSystem", False, False)
    records = codec.parse_records(one.data)
    assert records[0] == codec.Record(214, 0, 0, "FMNOR", "1")
    assert codec.Record(214, 1, 1, "GNNEW", "688F030006") in records
    assert codec.Record(214, 1, 1, "INSOL", None) in records  # _NV is "no value"
    rates = {r.position: r.value for r in codec.parse_records(two.data) if r.parameter == "INRT"}
    assert rates == {(1, 3): "0.30"}


def test_third_captured_frame_is_rejected_for_its_length_field():
    (item,) = FrameDecoder().feed(captured_frames()[2])
    assert isinstance(item, LengthError) and "1067" in item.reason


def test_ack_and_nak_between_frames_are_link_control_not_noise():
    items = FrameDecoder().feed(bytes([ACK]) + VECTORS[0][2] + bytes([NAK]))
    assert items == [LinkControl(ACK, 0), Frame("1", b"ADMIN:ALIVE", True, 1), LinkControl(NAK, 32)]


def test_bad_checksum_is_a_checksum_error_with_both_values():
    frame = bytearray(VECTORS[1][2])
    frame[-2] = ord("8")
    (item,) = FrameDecoder().feed(bytes(frame))
    assert isinstance(item, ChecksumError) and (item.expected, item.got) == (39, 38)


def test_new_soh_inside_a_frame_restarts_and_noise_is_counted():
    items = FrameDecoder().feed(b"xx\x0100031\x021/1" + VECTORS[0][2])
    assert isinstance(items[0], DroppedBytes) and items[0].data == b"xx"
    assert isinstance(items[1], DroppedBytes) and items[1].data.startswith(b"\x01")
    assert items[2] == Frame("1", b"ADMIN:ALIVE", True, 12)


@pytest.mark.parametrize(
    ("address", "position"),
    [("50100", (0, 0)), ("50111", (1, 1)), ("5012O", (2, 24)), ("5013A", (3, 10)), ("501110", (1, 10))],
)
def test_addresses_in_both_forms(address, position):
    assert codec.parse_address(address) == position


@pytest.mark.parametrize(
    "record", [b"12,50111", b"x,50111,INRT,1", b"12,50141,INRT,1", b"1,50111,INRT,1,2", b"1,5011P,INRT,1"]
)
def test_malformed_records_are_frame_errors(record):
    with pytest.raises(FrameError, match="bad record"):
        codec.parse_records(record)


def test_getslot_uses_slot_letters_after_nine():
    assert codec.getslot_request(1, 1) == "MEM:GETSLOT#11"
    assert codec.getslot_request(2, 10) == "MEM:GETSLOT#2A"
    assert codec.getslot_request(3, 24) == "MEM:GETSLOT#3O"
    with pytest.raises(ValueError):
        codec.getslot_request(4, 1)


# -- hypothesis --------------------------------------------------------------------------

_printable = st.binary(min_size=0, max_size=60).map(lambda b: bytes(c for c in b if 0x20 <= c <= 0x7E or c == 0x1E))
_beds = st.from_regex(r"[0-9A-Za-z]{1,15}", fullmatch=True)
frames_st = st.tuples(_beds, _printable, st.booleans())


@given(st.lists(frames_st, min_size=1, max_size=4), st.booleans(), st.data())
def test_any_split_of_any_frames_round_trips_with_and_without_stuffing(frames, stuffing, data):
    wire = b"".join(encode_frame(b, d, final=f, stuffing=stuffing) for b, d, f in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    decoder = FrameDecoder(stuffing=stuffing)
    out = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        out += decoder.feed(wire[start:end])
    assert [(f.bed_id, f.data, f.final) for f in out] == frames and decoder.pending == 0


@given(st.binary(max_size=100), frames_st)
def test_garbage_before_a_frame_is_reported_and_the_frame_still_decodes(garbage, frame):
    bed, payload, final = frame
    items = FrameDecoder().feed(garbage + b"\x04" + encode_frame(bed, payload, final=final))
    assert isinstance(items[-1], Frame) and items[-1].data == payload


@given(frames_st, st.data())
def test_truncated_frame_waits_then_flush_reports_it(frame, data):
    wire = encode_frame(frame[0], frame[1], final=frame[2])
    cut = data.draw(st.integers(1, len(wire) - 1))
    decoder = FrameDecoder()
    assert decoder.feed(wire[:cut]) == [] and decoder.pending == cut
    (error,) = decoder.flush()
    assert isinstance(error, DroppedBytes) and error.data == wire[:cut]


@settings(max_examples=300)
@given(frames_st, st.data())
def test_any_single_byte_change_is_never_accepted_as_the_original_frame(frame, data):
    wire = bytearray(encode_frame(frame[0], frame[1], final=frame[2]))
    index = data.draw(st.integers(0, len(wire) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != wire[index]))
    wire[index] = new
    decoder = FrameDecoder()
    items = decoder.feed(bytes(wire)) + decoder.flush()
    originals = [i for i in items if isinstance(i, Frame) and (i.bed_id, i.data, i.final) == frame]
    assert originals == []


def test_checksum_is_the_sum_mod_256_of_soh_through_etx():
    assert checksum(b"\x0100031\x021/1/1>ADMIN:ALIVE\x03") == 61


_records = st.builds(
    codec.Record,
    st.integers(0, 10**9),
    st.integers(0, 3),
    st.integers(0, 24),
    st.from_regex(r"[A-Z][A-Z0-9]{1,9}", fullmatch=True),
    st.one_of(
        st.none(), st.from_regex(r"[A-Za-z0-9./~ -]{1,16}", fullmatch=True).filter(lambda v: v not in codec.NO_VALUE)
    ),
)


@given(st.lists(_records, min_size=1, max_size=10))
def test_records_round_trip_through_a_frame(records):
    (frame,) = FrameDecoder().feed(encode_frame("ComSystem", codec.format_records(records)))
    assert codec.parse_records(frame.data) == records


@given(st.binary(max_size=120))
def test_arbitrary_user_data_parses_or_raises_a_frame_error(data):
    try:
        codec.parse_records(data)
    except FrameError:
        pass
