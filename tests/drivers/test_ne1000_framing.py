"""NE-1000 framing (reference §1, §2.4, §2.5, §2.10): vectors, resynchronisation, hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import FrameError
from drivers.ne1000.framing import (
    STX,
    ChecksumError,
    DroppedBytes,
    Frame,
    ReplyDecoder,
    Request,
    RequestDecoder,
    crc16_xmodem,
    encode_basic,
    encode_basic_reply,
    encode_safe,
)

# §2.10, transcribed byte for byte.
SAFE_VECTORS = [
    (b"SAF0", "02 08 53 41 46 30 55 43 03"),
    (b"0", "02 05 30 36 53 03"),
    (b"0VER", "02 08 30 56 45 52 48 09 03"),
    (b"0DIS", "02 08 30 44 49 53 30 46 03"),
    (b"0RAT", "02 08 30 52 41 54 38 CB 03"),
    (b"0VOL", "02 08 30 56 4F 4C 54 3D 03"),
    (b"0SAF0", "02 09 30 53 41 46 30 59 AD 03"),
]


def test_crc16_xmodem_check_value_matches_reference_section_1():
    assert crc16_xmodem(b"123456789") == 0x31C3


@pytest.mark.parametrize(("data", "packet"), SAFE_VECTORS)
def test_safe_mode_packet_matches_reference_vector(data, packet):
    assert encode_safe(data) == bytes.fromhex(packet)


@pytest.mark.parametrize(("data", "packet"), SAFE_VECTORS)
def test_pump_side_decodes_reference_vector_into_its_command(data, packet):
    assert RequestDecoder().feed(bytes.fromhex(packet)) == [Request(data.decode(), safe=True, offset=0)]


def test_basic_mode_dis_query_matches_reference_vector():
    assert encode_basic("0DIS") == bytes.fromhex("30 44 49 53 0D")


def test_basic_encoder_refuses_control_characters_so_no_second_command_can_be_smuggled():
    with pytest.raises(ValueError):
        encode_basic("0VER\r0RUN")


def test_basic_reply_is_decoded_one_byte_at_a_time():
    decoder = ReplyDecoder()
    items = [item for byte in encode_basic_reply("00I15.40MH") for item in decoder.feed(bytes([byte]))]
    assert items == [Frame(b"00I15.40MH", safe=False, offset=0)]


def test_safe_reply_is_decoded_one_byte_at_a_time():
    decoder = ReplyDecoder()
    items = [item for byte in encode_safe(b"00A?R") for item in decoder.feed(bytes([byte]))]
    assert items == [Frame(b"00A?R", safe=True, offset=0)]


def test_garbage_before_a_reply_is_reported_with_its_offset_and_the_reply_still_decoded():
    items = ReplyDecoder().feed(b"\xffnoise" + encode_basic_reply("00S"))
    assert isinstance(items[0], DroppedBytes)
    assert (items[0].offset, items[0].data) == (0, b"\xffnoise")
    assert items[1] == Frame(b"00S", safe=False, offset=6)


def test_bad_checksum_names_expected_and_received_crc():
    packet = bytearray(encode_safe(b"00S"))
    packet[-2] ^= 0x01
    (error,) = ReplyDecoder().feed(bytes(packet))
    assert isinstance(error, ChecksumError)
    expected = crc16_xmodem(b"00S")
    assert error.expected == expected and error.got == expected ^ 0x01
    assert f"expected 0x{expected:04X}" in str(error)


def test_truncated_basic_reply_followed_by_a_good_one_yields_the_good_one():
    items = ReplyDecoder().feed(b"\x0200I15" + encode_basic_reply("00S"))
    assert isinstance(items[0], FrameError) and items[0].data == b"\x0200I15"
    assert items[1] == Frame(b"00S", safe=False, offset=6)


def test_truncated_safe_packet_does_not_swallow_the_next_packet():
    items = ReplyDecoder().feed(encode_safe(b"00I15.40MH")[:6] + encode_safe(b"00S"))
    assert isinstance(items[0], FrameError)
    assert items[-1] == Frame(b"00S", safe=True, offset=6)


def test_non_ascii_byte_inside_a_basic_reply_is_a_frame_error_at_its_position():
    items = ReplyDecoder().feed(b"\x0200\xffS\x03")
    assert all(isinstance(item, FrameError) for item in items)
    assert items[0].offset == 0 and "0xFF" in items[0].reason


def test_flush_reports_a_partial_frame_instead_of_holding_it_forever():
    decoder = ReplyDecoder()
    assert decoder.feed(b"\x0200I1") == []
    (error,) = decoder.flush()
    assert error.data == b"\x0200I1"
    assert decoder.pending == 0


def test_pump_side_accepts_commands_with_spaces_and_lower_case():
    assert RequestDecoder().feed(b"0 rat 12.5 mh\r") == [Request("0RAT12.5MH", safe=False, offset=0)]


# -- hypothesis -------------------------------------------------------------------------

reply_text = st.from_regex(r"\A[0-9]{2}[ISPWTUX][A-Z0-9.?]{0,20}\Z")
frames = st.lists(st.tuples(reply_text, st.booleans()), min_size=1, max_size=6)


def _wire(items: list[tuple[str, bool]]) -> bytes:
    return b"".join(encode_safe(t.encode()) if safe else encode_basic_reply(t) for t, safe in items)


def _decode_in_chunks(stream: bytes, cuts: list[int]) -> list:
    decoder = ReplyDecoder()
    out, last = [], 0
    for cut in sorted(set(c % (len(stream) + 1) for c in cuts)) + [len(stream)]:
        out += decoder.feed(stream[last:cut])
        last = cut
    return out + decoder.flush()


@given(frames)
def test_every_encoded_reply_decodes_back_to_its_data(items):
    decoded = ReplyDecoder().feed(_wire(items))
    assert [(f.data.decode(), f.safe) for f in decoded] == items


@given(frames, st.lists(st.integers(min_value=0), max_size=12))
def test_any_split_of_the_byte_stream_yields_the_same_frames(items, cuts):
    decoded = _decode_in_chunks(_wire(items), cuts)
    assert [(f.data.decode(), f.safe) for f in decoded] == items


@given(st.binary(max_size=200), st.lists(st.integers(min_value=0), max_size=8))
def test_arbitrary_bytes_are_all_accounted_for_and_never_raise(stream, cuts):
    out = _decode_in_chunks(stream, cuts)
    accounted = sum(
        len(i.data) + (2 if isinstance(i, Frame) and not i.safe else 0)
        for i in out
        if isinstance(i, Frame | FrameError)
    )
    safe_overhead = sum(5 for i in out if isinstance(i, Frame) and i.safe)
    assert accounted + safe_overhead == len(stream)


@given(frames, st.binary(min_size=1, max_size=30).filter(lambda b: STX not in b))
def test_garbage_before_frames_is_reported_and_frames_survive(items, garbage):
    out = ReplyDecoder().feed(garbage + _wire(items))
    assert isinstance(out[0], DroppedBytes) and out[0].data == garbage
    assert [(f.data.decode(), f.safe) for f in out if isinstance(f, Frame)] == items


@given(reply_text, st.booleans(), st.data())
def test_truncated_frame_never_yields_a_frame(text, safe, data):
    wire = encode_safe(text.encode()) if safe else encode_basic_reply(text)
    cut = data.draw(st.integers(min_value=1, max_value=len(wire) - 1))
    decoder = ReplyDecoder()
    out = decoder.feed(wire[:cut]) + decoder.flush()
    assert out and all(isinstance(i, FrameError) for i in out)


@settings(max_examples=300)
@given(reply_text, st.data())
def test_single_bit_corruption_of_a_safe_packet_never_passes_as_the_original(text, data):
    wire = bytearray(encode_safe(text.encode()))
    position = data.draw(st.integers(min_value=0, max_value=len(wire) - 1))
    wire[position] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    decoder = ReplyDecoder()
    out = decoder.feed(bytes(wire)) + decoder.flush()
    # Either an error, or (flipped length/STX byte exposing a sub-frame) never the same data.
    assert all(isinstance(i, FrameError) or i.data != text.encode() or not i.safe for i in out)
    assert any(isinstance(i, FrameError) for i in out)


def test_a_safe_packet_whose_length_byte_flipped_into_a_digit_is_not_taken_for_a_basic_reply():
    wire = bytearray(encode_safe(b"06IM0007001H"))  # its CRC bytes happen to be printable: 'L~'
    wire[1] ^= 1 << 5  # length 0x10 -> 0x30, the digit '0': it reads as a basic reply
    decoder = ReplyDecoder()
    out = decoder.feed(bytes(wire)) + decoder.flush()
    assert len(out) == 1 and isinstance(out[0], FrameError) and "corrupted" in str(out[0])


@given(reply_text, st.data())
def test_single_bit_corruption_of_a_basic_reply_is_detected_or_changes_the_data(text, data):
    wire = bytearray(encode_basic_reply(text))
    position = data.draw(st.integers(min_value=0, max_value=len(wire) - 1))
    wire[position] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    decoder = ReplyDecoder()
    out = decoder.feed(bytes(wire)) + decoder.flush()
    assert [i for i in out if isinstance(i, Frame) and i.data == text.encode()] == []


@given(
    st.lists(st.tuples(st.from_regex(r"\A[0-9]{0,2}[A-Z]{0,3}[0-9.A-Z]{0,8}\Z"), st.booleans()), max_size=6),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_pump_side_decoder_recovers_every_command_under_any_split(commands, cuts):
    stream = b"".join(encode_safe(c.encode()) if safe else encode_basic(c) for c, safe in commands)
    decoder = RequestDecoder()
    out, last = [], 0
    for cut in sorted(set(c % (len(stream) + 1) for c in cuts)) + [len(stream)]:
        out += decoder.feed(stream[last:cut])
        last = cut
    assert [(r.text, r.safe) for r in out] == commands
