"""MLLP framing: every valid frame exactly once, whatever the read boundaries; garbage and
broken frames reported with byte counts; oversized frames rejected."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from common.mllp.errors import MllpFrameTooLarge, MllpGarbage, MllpMalformedFrame
from common.mllp.framing import MllpDecoder, frame

payloads = st.binary(max_size=300).filter(lambda b: b"\x0b" not in b and b"\x1c" not in b)
garbage = st.binary(min_size=1, max_size=40).filter(lambda b: b"\x0b" not in b)


def feed_in_pieces(decoder: MllpDecoder, stream: bytes, cuts: list[int]) -> list:
    out, last = [], 0
    for cut in sorted(set(c % (len(stream) + 1) for c in cuts)) + [len(stream)]:
        out += decoder.feed(stream[last:cut])
        last = cut
    return out


def test_frame_wraps_payload_in_start_and_end_blocks():
    assert frame(b"MSH|x") == b"\x0bMSH|x\x1c\x0d"


@settings(max_examples=300)
@given(st.lists(payloads, max_size=8), st.lists(st.integers(min_value=0), max_size=30))
def test_any_split_or_merge_of_reads_yields_every_frame_once_in_order(messages, cuts):
    stream = b"".join(frame(m) for m in messages)
    assert feed_in_pieces(MllpDecoder(), stream, cuts) == messages


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.one_of(st.none(), garbage), payloads), max_size=8),
    st.lists(st.integers(min_value=0), max_size=30),
)
def test_garbage_between_frames_is_reported_with_its_byte_count_and_frames_survive(parts, cuts):
    stream = b"".join((g or b"") + frame(m) for g, m in parts)
    out = feed_in_pieces(MllpDecoder(), stream, cuts)
    assert [x for x in out if isinstance(x, bytes)] == [m for _, m in parts]
    reported = sum(x.byte_count for x in out if isinstance(x, MllpGarbage))
    assert reported == sum(len(g or b"") for g, _ in parts)
    assert all(isinstance(x, (bytes, MllpGarbage)) for x in out)


def test_one_byte_at_a_time_with_garbage_reports_offsets():
    stream = b"xy" + frame(b"A") + b"\r\n" + frame(b"BC")
    dec = MllpDecoder()
    out = [item for i in range(len(stream)) for item in dec.feed(stream[i : i + 1])]
    frames = [x for x in out if isinstance(x, bytes)]
    junk = [x for x in out if isinstance(x, MllpGarbage)]
    assert frames == [b"A", b"BC"]
    assert [(g.offset, g.byte_count) for g in junk] == [(0, 1), (1, 1), (6, 1), (7, 1)]


@settings(max_examples=200)
@given(st.integers(min_value=1, max_value=50), payloads, st.lists(st.integers(min_value=0), max_size=10))
def test_oversized_frame_is_rejected_and_the_next_frame_still_decodes(limit, after, cuts):
    big = b"M" * (limit + 1)
    stream = frame(big) + frame(after[:limit])
    out = feed_in_pieces(MllpDecoder(max_frame_bytes=limit), stream, cuts)
    errors = [x for x in out if isinstance(x, MllpFrameTooLarge)]
    assert len(errors) == 1 and errors[0].limit == limit and errors[0].offset == 0
    assert "exceeds" in str(errors[0])
    assert [x for x in out if isinstance(x, bytes)] == [after[:limit]]


def test_start_block_inside_a_frame_drops_the_truncated_frame_and_resynchronises():
    out = MllpDecoder().feed(b"\x0bHALF" + frame(b"WHOLE"))
    assert isinstance(out[0], MllpMalformedFrame) and out[0].dropped == 5
    assert out[1:] == [b"WHOLE"]


def test_end_block_not_followed_by_carriage_return_is_malformed():
    out = MllpDecoder().feed(b"\x0bABC\x1cX" + frame(b"OK"))
    assert isinstance(out[0], MllpMalformedFrame) and "0x58" in str(out[0])
    assert out[-1] == b"OK"
