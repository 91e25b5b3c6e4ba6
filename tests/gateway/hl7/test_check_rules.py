"""Each checker rule fires on a minimal defect planted in a conformant golden message,
the tolerated variants pass, and no input whatsoever makes the checker raise."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.pcd.conformance import check_message

GOLDEN = Path(__file__).parent / "golden"


def golden(name: str) -> str:
    return (GOLDEN / f"{name}.hl7").read_text(encoding="utf-8")


def rules(text: str) -> set[str]:
    return {f.rule for f in check_message(text)}


def _drop_line(text: str, prefix: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(prefix))


MUTATIONS = [
    ("pcd04_occlusion_end", lambda t: t.replace("|^AL0001&", "|AL0001&"), {"PCD04-OBR-29"}),
    ("pcd04_occlusion_onset", lambda t: _drop_line(t, "OBX|6|"), {"PCD04-FACET-MISSING", "OBX-1"}),
    ("pcd04_occlusion_onset", lambda t: t.replace("|1.1.2.0.3|start|", "|1.1.2.0.3|begin|"), {"PCD04-FACET-VALUE"}),
    ("pcd04_occlusion_onset", lambda t: t.replace("|1.1.2.0.1|196940^", "|1.1.2.0.1|196941^"), {"MDC-CODE"}),
    (
        "pcd04_occlusion_onset",
        lambda t: t.replace("|end||||||F", "|end||||||R").replace("|start||||||F", "|start||||||R"),
        {"PCD04-OBX-11"},
    ),
    (
        "pcd04_occlusion_onset",
        lambda t: t.replace("|196616^MDC_EVT_ALARM^MDC|||", "|2222^Dopamine|||"),
        {"PCD04-OBR-4"},
    ),
    ("pcd10_delivery_start", lambda t: _drop_line(t, "OBX|4|"), {"PCD10-EVENT", "OBX-1"}),
    ("pcd10_delivery_start", lambda t: t.replace("|1.0.0.3|1.1.2.0|", "|1.0.0.3|1.7.2.0|"), {"PCD10-EVENT"}),
    (
        "pcd10_delivery_start",
        lambda t: t.replace("1.3.6.1.4.1.19376.1.6.4.10", "1.3.6.1.4.1.19376.1.6.1.1.1"),
        {"MSH-21"},
    ),
    ("pcd10_delivery_start", lambda t: t.replace("ORU^R42^ORU_R01", "ORU^R42^ORU_R40"), {"MSH-9"}),
    ("pcd10_delivery_start", lambda t: t.replace("PV1|", "ORC|NW\nPV1|"), {"STRUCTURE"}),
    ("pcd01_one_channel", lambda t: t.replace("|20151015182106+0000\n", "|20151015182106\n"), {"TS-OFFSET"}),
    ("pcd01_one_channel", lambda t: t.replace("|1.1.2.0|||||||X", "|1.1.2.0|5||||||X"), {"DEVICE-ROW"}),
    ("pcd01_one_channel", lambda t: t.replace("|1.1.2.5|", "|1.1.2.4|"), {"OBX-4-UNIQUE"}),
    ("pcd01_one_channel", lambda t: t.replace("|1.1.2.5|", "|1.1.2.50|"), {"OBX-4-ORDER"}),
    ("pcd01_one_channel", lambda t: t.replace("|Dopamine||||||R", "|Dopamine||||||X"), {"METRIC-STATUS-X"}),
    ("pcd01_one_channel", lambda t: t.replace("|Dopamine|", "|Dopamineé|"), {"MSH-18"}),
    ("pcd01_one_channel", lambda t: t.replace("|2.6|", "|2.5|"), {"MSH-12"}),
    ("pcd01_one_channel", lambda t: t.replace("|AL|NE|", "|NE|NE|"), {"MSH-15"}),
    ("pcd01_one_channel", lambda t: t.replace("|Crit Care|", "| Crit Care|"), {"STRAY-BLANK"}),
    ("pcd01_one_channel", lambda t: t.replace("PV1||U|", "PV1||Z|"), {"PV1-2"}),
    ("pcd01_one_channel", lambda t: t.replace("|15.4|265266", "|fast|265266"), {"OBX-5"}),
]


@pytest.mark.parametrize(
    ("name", "mutate", "expected"), MUTATIONS, ids=[f"{n}-{'+'.join(sorted(e))}" for n, _, e in MUTATIONS]
)
def test_a_planted_defect_is_reported_by_its_rule_and_nothing_else(name, mutate, expected):
    mutated = mutate(golden(name))
    assert mutated != golden(name), "the mutation did not apply"
    assert rules(mutated) == expected


def test_device_rows_first_then_metrics_is_the_accepted_b84_variation():
    lines = golden("pcd01_one_channel").splitlines()
    header, obx = lines[:4], lines[4:]
    device = [s for s in obx if "|||||||X" in s]
    metrics = sorted((s for s in obx if s not in device), key=lambda s: s.split("|")[4])
    renumbered = [f"OBX|{i}|" + s.split("|", 2)[2] for i, s in enumerate(device + metrics, start=1)]
    assert check_message("\n".join(header + renumbered) + "\n") == []


def test_mllp_framing_and_crlf_line_ends_are_tolerated():
    framed = b"\x0b" + golden("pcd10_delivery_start").replace("\n", "\r\n").encode() + b"\x1c\r"
    assert check_message(framed) == []


def test_the_alternative_acm_oid_is_tolerated_but_reported():
    text = golden("pcd04_occlusion_onset").replace("19376.1.6.1.4.1", "19376.1.6.4.4.1")
    assert rules(text) == {"MSH-21-ALT"}


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_checker_never_raises_whatever_it_is_given(data):
    base = data.draw(st.sampled_from(["pcd01_two_channels", "pcd04_occlusion_end", "pcd10_delivery_start"]))
    text = golden(base)
    for _ in range(data.draw(st.integers(1, 6))):
        cut = data.draw(st.integers(0, len(text)))
        junk = data.draw(st.text(alphabet=st.sampled_from("|^~\\&.0123456789\nAOBXMSHR \x0b"), max_size=8))
        drop = data.draw(st.integers(0, 5))
        text = text[:cut] + junk + text[cut + drop :]
    findings = check_message(text.encode("utf-8", errors="replace"))
    assert all(f.rule and f.message for f in findings)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_make_the_checker_raise(raw):
    assert isinstance(check_message(raw), list)


def test_an_8859_1_message_is_read_not_rejected():
    text = golden("pcd01_one_channel").replace("|Dopamine|", "|Dopamin\u00e9|").replace("|USA||", "|USA|8859/1|")
    assert check_message(text.encode("latin-1")) == []
