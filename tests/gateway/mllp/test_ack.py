"""ACK parsing (original and enhanced mode), tolerant of spaces and segment-end variants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mllp.ack import ACK_CODES, extract_control_id, parse_ack
from gateway.mllp.errors import AckError
from simulators.ehr import build_ack

control_ids = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._", min_size=1, max_size=30)


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(ACK_CODES)),
    control_ids,
    st.sampled_from(["\r", "\n", "\r\n"]),
    st.sampled_from(["", " ", "  "]),
    st.booleans(),
)
def test_code_and_msa2_survive_segment_ends_spaces_and_case(code, cid, end, pad, lower):
    text = (
        f"MSH|^~\\&|EHR|H|GW|W|20240101120000+0000||ACK^R01^ACK|A1|P|2.6{end}"
        f"MSA|{pad}{code.lower() if lower else code}{pad}|{pad}{cid}{pad}{end}"
    )
    ack = parse_ack(text.encode())
    assert (ack.code, ack.control_id) == (code, cid)
    assert ack.accepted == (code in ("AA", "CA"))
    assert ack.rejected == (code in ("AR", "CR"))
    assert ack.error == (code in ("AE", "CE"))


def test_error_text_comes_from_err_segment_when_msa3_is_empty():
    raw = b"MSH|^~\\&|x||||||ORU^R01^ORU_R01|C7|P|2.6\r"
    ack = parse_ack(build_ack(raw, "AE", text="unknown patient"))
    assert ack.code == "AE" and ack.control_id == "C7"
    assert ack.text == "unknown patient" and ack.errors[0].startswith("ERR|")


def test_msa3_text_is_used_when_present():
    assert parse_ack(b"MSH|^~\\&|a\rMSA|AR|X1|busy, try later\r").text == "busy, try later"


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_garbage_raises_ack_error_never_anything_else(data):
    try:
        ack = parse_ack(data)
    except AckError as exc:
        assert exc.data == data
    else:
        assert ack.code in ACK_CODES and ack.control_id


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "no MSH"),
        (b"MSH|^~\\&|a\rPID|1\r", "no MSA"),
        (b"MSH|^~\\&|a\rMSA|OK|C1\r", "MSA-1"),
        (b"MSH|^~\\&|a\rMSA|AA|\r", "MSA-2"),
    ],
)
def test_non_acks_name_what_is_wrong(data, reason):
    with pytest.raises(AckError, match=reason):
        parse_ack(data)


def test_custom_field_separator_from_msh1():
    assert parse_ack(b"MSH#^~\\&#a\rMSA#CA#Z9\r").control_id == "Z9"


def test_extract_control_id_reads_msh10():
    assert extract_control_id(b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01^ORU_R01| C-42 |P|2.6\rPID|\r") == "C-42"
    assert extract_control_id(b"PID|1\r") == ""


def outcome(parse, data: bytes) -> object:
    try:
        return parse(data)
    except AckError as exc:
        return ("AckError", exc.reason)


segments = st.one_of(
    st.builds(
        lambda code, cid, text: f"MSA|{code}|{cid}" + (f"|{text}" if text is not None else ""),
        st.sampled_from([*sorted(ACK_CODES), "aa", "ca", "OK", ""]),
        st.sampled_from(["C1", "", " C1", "C 1"]),
        st.none() | st.sampled_from(["", "busy", "a|b"]),
    ),
    st.sampled_from(
        ["ERR|||207^Application internal error|E", "ERRX|1", "MSAX|AA|C9", "MSA", "PID|1", " MSA|AA|C2", ""]
    ),
    st.text(alphabet="MSAERH|^~&\\ 01\t", max_size=12),
)


@settings(max_examples=500)
@given(
    st.sampled_from(["MSH|^~\\&|EHR|H", "MSH#^~\\&#a", " MSH|^~\\&|a", "MSH|"]),
    st.lists(segments, max_size=4),
    st.sampled_from(["\r", "\n", "\r\n"]),
    st.sampled_from(["", "\r", "é"]),
)
def test_the_plain_ack_shortcut_reads_exactly_what_the_full_parser_reads(msh, segs, end, tail):
    from gateway.mllp.ack import _parse

    data = (end.join([msh, *segs]) + tail).encode()
    assert outcome(parse_ack, data) == outcome(_parse, data)
