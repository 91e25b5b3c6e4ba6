"""The NE-1000 simulator's request decoder: what a pump hears must not depend on chunking."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ne1000.framing import CR, ETX, STX, Request, RequestDecoder, encode_basic, encode_safe

pieces = st.one_of(
    st.sampled_from([bytes([STX]), bytes([CR]), bytes([ETX]), b"RAT", b"VER", b" ", b"\x00", b"\xff", b"A" * 70]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).map(lambda t: encode_basic(t)),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).map(lambda t: encode_safe(t.encode())),
    st.binary(max_size=12),
)


def decode(chunks: list[bytes]) -> list[Request]:
    decoder = RequestDecoder()
    out = [item for chunk in chunks for item in decoder.feed(chunk)]
    return [(r.text, r.safe, r.offset) for r in out if isinstance(r, Request)]


@settings(max_examples=500)
@given(st.lists(pieces, max_size=12).map(b"".join), st.data())
def test_requests_decoded_do_not_depend_on_how_the_bytes_were_chunked(stream, data):
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=8), label="cuts"))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    assert decode(chunks) == decode([stream])
    assert decode(chunks) == decode([bytes([b]) for b in stream])
