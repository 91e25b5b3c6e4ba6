"""The inbound mapping and the ACK builder on any input: a named error or a result, never a
traceback; ACKs always answer the control id they were given. Plus the TF's own examples."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from common.pcd.parse import parse_message
from gateway.sources.ack import Outcome, acknowledgements
from gateway.sources.mapping import UnusableMessage, read_devices
from simulators.vendor_server.messages import VERDICT_PROGRAMS, pcd01

TF_EXAMPLES = Path(__file__).resolve().parents[1] / "hl7" / "tf_examples"

_BASE = pcd01(VERDICT_PROGRAMS["within_limits"], "C1").decode()
_LINES = _BASE.split("\r")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mangled_pcd01_is_read_or_refused_with_a_position(data):
    lines = list(_LINES)
    i = data.draw(st.integers(0, len(lines) - 1))
    mangled = data.draw(st.text(alphabet=st.sampled_from("|^~\\&.0123456789AaZ -"), max_size=40))
    lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i])))] + mangled
    message = parse_message("\r".join(lines))
    if message.msh is None:
        return
    try:
        devices = read_devices(message)
    except UnusableMessage as exc:
        assert exc.reason and (exc.segment_id or exc.sequence == 0)
    else:
        assert all(d.device for d in devices)


@given(
    st.from_regex(r"[A-Za-z0-9]{1,20}", fullmatch=True),
    st.sampled_from(["AA", "AE", "AR"]),
    st.sampled_from(["", "AL", "NE", "ER", "SU"]),
    st.sampled_from(["", "AL", "NE", "ER", "SU"]),
)
def test_acknowledgements_answer_the_control_id_in_the_requested_mode(cid, code, msh15, msh16):
    raw = _BASE.replace("|C1|P|2.6|||AL|NE|", f"|{cid}|P|2.6|||{msh15}|{msh16}|", 1)
    msh = parse_message(raw).msh
    outcome = Outcome(code, "" if code == "AA" else "207", "why", "OBX", 3, 5)
    acks = acknowledgements(msh, outcome, application="PUMPGW", facility="SITE")
    if not msh15 and not msh16:
        assert len(acks) == 1
    for ack in acks:
        m = parse_message(ack)
        msa = m.named("MSA")[0]
        assert msa.field(2) == cid and msa.field(1)[1] == code[1]
        assert bool(m.named("ERR")) == (code != "AA")


def test_the_tf_pcd10_example_maps_to_one_dopamine_channel_with_its_identity():
    raw = (TF_EXAMPLES / "ihe-dev-tf10_M1.2.2_pcd10_delivery-start.hl7").read_bytes()
    [dev] = read_devices(parse_message(raw))
    ch = dev.channels[1]
    assert (dev.device, dev.library_version, dev.event) == ("E0002", "DL1", "MDC_EVT_PUMP_DELIV_START")
    assert (ch.label, ch.drug, ch.care_area) == ("Primary", "Dopamine", "Crit Care")
    assert ch.values["dose_rate"].value == Decimal("5.00") and ch.values["dose_rate"].unit == "ug/kg/min"
    assert ch.values["patient_weight"].unit == "kg" and dev.patient is not None


def test_the_tf_bbraun_pcd04_example_maps_to_an_occlusion_onset_of_its_device():
    raw = (TF_EXAMPLES / "ihe-dev-tf10_E3.2_pcd04_bbraun-pump_occlusion_start.unwrapped.hl7").read_bytes()
    [dev] = read_devices(parse_message(raw))
    [alert] = dev.alerts
    assert (dev.device, alert.kind, alert.phase, alert.channel) == ("P6013", "occlusion", "start", 0)


_TEXT = (
    st.text(
        alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters=" -"),
        min_size=1,
        max_size=20,
    )
    .map(str.strip)
    .filter(bool)
)
_NUM = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(9999), places=2).map(str)


@settings(max_examples=150, deadline=None)
@given(
    drug=_TEXT, area=_TEXT, rate=_NUM, dose=_NUM, weight=_NUM, device=st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True)
)
def test_the_vendor_servers_pcd01_is_conformant_and_maps_back_to_its_program(drug, area, rate, dose, weight, device):
    from dataclasses import replace

    from common.pcd.conformance import check_message

    program = replace(
        VERDICT_PROGRAMS["within_limits"],
        device=device,
        drug=drug,
        care_area=area,
        rate_ml_h=rate,
        dose_rate=(dose, "ug/kg/min"),
        weight_kg=weight,
    )
    raw = pcd01(program, "P1")
    assert [f for f in check_message(raw) if f.severity == "error"] == []
    [dev] = read_devices(parse_message(raw))
    ch = dev.channels[1]
    assert (dev.device, ch.drug, ch.care_area) == (device, drug, area)
    assert (ch.values["rate"].value, ch.values["dose_rate"].value, ch.values["patient_weight"].value) == (
        Decimal(rate),
        Decimal(dose),
        Decimal(weight),
    )
