"""The parser's fast path for plain segments (no escape, no blank beside a separator) reads
every field, component and repetition exactly as the trimming, unescaping path does."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from common.pcd.parse import EDGE_BLANK, has_edge_blank, parse_message

_ALPHABET = st.sampled_from(list("ab1.|^~&\\ \t\u00a0XE"))
_LINES = st.text(_ALPHABET, max_size=40).map(lambda t: "OBX|" + t)


@settings(max_examples=400, deadline=None)
@given(_LINES)
def test_edge_blank_test_agrees_with_the_regex(line):
    assert has_edge_blank(line) == (EDGE_BLANK.search(line) is not None)


@settings(max_examples=400, deadline=None)
@given(_LINES)
def test_plain_segment_reads_as_the_slow_path_does(line):
    seg = parse_message("MSH|^~\\&|A\r" + line + "\r").segments[1]
    slow = dataclasses.replace(seg, plain=False, _cache={})
    for n in range(len(seg.fields) + 2):
        assert seg.field(n) == slow.field(n)
        assert seg.repetitions(n) == slow.repetitions(n)
        for rep in range(3):
            assert seg.components(n, rep) == slow.components(n, rep)


def test_a_segment_with_an_escape_or_an_edge_blank_is_not_plain():
    msg = parse_message("MSH|^~\\&|A\rOBX|1|ST|x||a\\S\\b\rOBX|2|ST|x|| b\rOBX|3|ST|x||Crit Care\r")
    assert [s.plain for s in msg.segments[1:]] == [False, False, True]
    assert [s.field(5) for s in msg.segments[1:]] == ["a^b", "b", "Crit Care"]
