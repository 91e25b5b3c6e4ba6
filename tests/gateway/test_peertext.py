"""Peer text helpers: bounded storage, summaries that never carry the text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.peertext import MAX_STORED_CHARS, bound_text, err_codes, summarise_reply, token


@given(st.text(max_size=5000), st.integers(min_value=1, max_value=2048))
def test_bound_text_never_exceeds_its_limit_and_keeps_short_text_whole(text, limit):
    out = bound_text(text, limit)
    assert len(out) <= limit
    if len(text) <= limit:
        assert out == text
    else:
        assert out.startswith(text[: max(0, limit - 40)][:10]) or limit < 40


def test_bound_text_says_how_much_was_cut():
    out = bound_text("E" * (15 << 20))
    assert len(out) == MAX_STORED_CHARS and out.endswith("more chars cut]")


@given(st.binary(max_size=400))
def test_summarise_reply_shows_only_shape_never_field_content(data):
    summary = summarise_reply(b"MSH|^~\\&|A|B|C|D|2024||ORU^R01|1|P|2.6\rPID|||" + data)
    # nothing of the data shows up: only segment names (3 capitals), the size and MSH-9
    head = b"MSH|^~\\&|A|B|C|D|2024||ORU^R01|1|P|2.6\rPID|||"
    assert summary.startswith(f"{len(head) + len(data)} bytes, segments [MSH,PID")
    assert summary.endswith("MSH-9 ORU^R01")


def test_codes_from_a_peer_are_shown_only_when_they_look_like_codes():
    assert token("AE") == "AE" and token("Doe, Jane (MRN 4711)") == "?"
    assert err_codes(["ERR|||207^Application internal error^HL70357|E", "ERR|^^^102|", "ERR|||John Doe"]) == [
        "207",
        "102",
        "?",
    ]
