"""Alaris-style framing (reference §1, §3.3, §3.9): every vector, resync, hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.alaris.framing import (
    AbortedFrame,
    ChecksumError,
    DroppedBytes,
    Frame,
    FrameDecoder,
    crc16_ccitt_false,
    encode_body,
    encode_frame,
)
from drivers.errors import FrameError

# §3.9, transcribed: body -> CRC (4 upper-case hex).
VECTORS = [
    ("INF", "4961"),
    ("COMMS_PROTOCOL", "E8DA"),
    ("INST_SERIALNO", "457D"),
    ("INF_VTBI", "8456"),
    ("INF_START", "38F3"),
    ("INF_STOP", "CD57"),
    ("INF_VTBI^ACTIV^11.000^ml^STOP", "4433"),
    ("INF_VTBI^DEACT", "D8C5"),
    ("INF_BOLUS^ENABLED", "E288"),
    ("REMQUERY^DEACT", "F295"),
    ("REMOTE_CTRL^DISABLED", "EF95"),
    ("8002-51740", "3CC1"),
    ("8002-51733", "9535"),
    ("REMOTE_CTRL^ENABLED^3CC1", "B1F1"),
    ("REMOTE_CTRL^ENABLED^9535", "FB2F"),
    ("INST_SERIALNO^8002-51740", "050B"),
    ("COMMS_PROTOCOL^Asena Rev 2.1.5", "661A"),
    ("REMOTE_CTRL^ENABLED^****^PERMIT^0^ms", "7BB0"),
    ("COMMS_RESPONSE_MAX^4000^ms", "DFDF"),
    ("SYRINGE_STATUS^BD PLASTIPAK^ 50^CONF", "1CF8"),
    ("INF_RATE_MAX_SYRINGE^1200.00^ml/h", "8575"),
    ("INF_VI_CLEAR", "A706"),
    ("ALARM^AL_NOALM^ ^ ", "C73B"),
    ("INF_RATE^0.1^ml/h", "B775"),
    ("INF_RATE^0.10^ml/h", "D407"),
    ("INF_RATE", "8E6D"),
    ("INF_VI", "B42C"),
    ("COMMS_RESPONSE_MAX", "7E29"),
    ("ALARM", "50B2"),
    ("INF^8002-51740^-^SET^5.00^ml/h^^1.234^ml^17.91^mmHg^24+^EVENT^127904", "BBAA"),
]


def test_crc16_ccitt_false_check_value_matches_reference_section_1():
    assert crc16_ccitt_false(b"123456789") == 0x29B1


@pytest.mark.parametrize(("body", "crc"), VECTORS)
def test_frame_carries_the_reference_crc(body, crc):
    assert encode_frame(body.encode()) == b"!" + body.encode() + b"|" + crc.encode() + b"\r"


@pytest.mark.parametrize(("body", "crc"), VECTORS)
def test_reference_frame_decodes_to_its_body(body, crc):
    wire = f"!{body}|{crc}\r".encode()
    assert FrameDecoder().feed(wire) == [Frame(body.encode(), 0)]


def test_forum_byte_dump_is_the_inf_query():
    wire = bytes.fromhex("21 49 4E 46 7C 34 39 36 31 0D")
    assert encode_frame(encode_body("INF")) == wire
    assert FrameDecoder().feed(wire) == [Frame(b"INF", 0)]


def test_openice_simulator_remquery_reply_is_rejected_with_the_crc_it_should_have():
    (item,) = FrameDecoder().feed(b"!REMQUERY^DEACT^^^|E5C9\r")
    assert isinstance(item, ChecksumError)
    assert (item.expected, item.got) == (0xB968, 0xE5C9)
    assert crc16_ccitt_false(b"REMQUERY^DEACT^^^^") == 0xE5C9


def test_esc_discards_the_partial_frame_and_the_next_frame_decodes():
    items = FrameDecoder().feed(b"!INF_RA\x1b!INF|4961\r")
    assert isinstance(items[0], AbortedFrame) and items[0].data == b"!INF_RA\x1b"
    assert items[1] == Frame(b"INF", 8)


def test_noise_and_stray_cr_before_a_frame_are_reported_with_offset():
    items = FrameDecoder().feed(b"xx\r!INF|4961\r")
    assert isinstance(items[0], DroppedBytes) and (items[0].offset, items[0].data) == (0, b"xx\r")
    assert items[1] == Frame(b"INF", 3)


def test_a_new_start_inside_a_frame_restarts_it():
    items = FrameDecoder().feed(b"!INF^5.0!INF|4961\r")
    assert isinstance(items[0], AbortedFrame)
    assert items[1] == Frame(b"INF", 8)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"!INF4961\r", "without '|'"),
        (b"!INF|49G1\r", "hex CRC"),
        (b"!INF|4961A\r", "hex CRC"),
        (b"!INF|4961\x00\r", "not ASCII"),
        (b"!|FFFF\r", "empty body"),
    ],
)
def test_malformed_frames_are_specific_errors(wire, reason):
    items = FrameDecoder().feed(wire)
    assert items and isinstance(items[0], FrameError) and reason in items[0].reason


def test_frame_is_decoded_one_byte_at_a_time():
    decoder = FrameDecoder()
    wire = encode_frame(b"INF_RATE^5.00^ml/h")
    out = []
    for byte in wire[:-1]:
        out += decoder.feed(bytes([byte]))
        assert out == []
    assert decoder.feed(wire[-1:]) == [Frame(b"INF_RATE^5.00^ml/h", 0)]


@pytest.mark.parametrize("body", [b"INF\rINF_START", b"INF|X", b"!INF", b"INF\x1b", b""])
def test_encoder_refuses_bodies_that_could_smuggle_a_second_frame(body):
    with pytest.raises(ValueError):
        encode_frame(body)


# -- hypothesis --------------------------------------------------------------------------

_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="!|^"), max_size=20)
bodies = st.builds(lambda name, fields: encode_body(name or "X", *fields), _text, st.lists(_text, max_size=6))


@given(st.lists(bodies, min_size=1, max_size=5), st.data())
def test_any_split_of_a_stream_of_frames_yields_each_frame_once(frames, data):
    wire = b"".join(encode_frame(b) for b in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    decoder = FrameDecoder()
    out = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        out += decoder.feed(wire[start:end])
    assert [f.body for f in out] == frames and decoder.pending == 0


@given(st.binary(max_size=200), bodies)
def test_garbage_never_hides_a_following_frame_and_every_byte_is_accounted(garbage, body):
    decoder = FrameDecoder()
    items = decoder.feed(garbage + b"\x1b" + encode_frame(body))
    assert isinstance(items[-1], Frame) and items[-1].body == body
    accounted = sum(len(i.data) for i in items if isinstance(i, FrameError)) + len(encode_frame(body))
    assert accounted == len(garbage) + 1 + len(encode_frame(body))


@given(bodies, st.data())
def test_truncated_frame_waits_then_is_reported_by_flush(body, data):
    wire = encode_frame(body)
    cut = data.draw(st.integers(1, len(wire) - 1))
    decoder = FrameDecoder()
    assert decoder.feed(wire[:cut]) == []
    (error,) = decoder.flush()
    assert isinstance(error, AbortedFrame) and error.data == wire[:cut]


@settings(max_examples=300)
@given(bodies, st.data())
def test_any_single_bit_flip_is_rejected_never_accepted_as_the_original(body, data):
    wire = bytearray(encode_frame(body))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] ^= 1 << data.draw(st.integers(0, 7))
    decoder = FrameDecoder()
    items = decoder.feed(bytes(wire)) + decoder.flush()
    assert all(isinstance(i, FrameError) for i in items), items
