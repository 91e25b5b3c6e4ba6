"""Golden messages: PCD-01 (1 and 2 channels), PCD-10 delivery start, PCD-04 occlusion onset/end.

The committed files under golden/ were checked by hand against TF2-R10 (M.1.2.2 for the
pump tree and PCD-10, E.3.2 and B.7.1/B.8.5 for PCD-04); each test also proves the file
passes the checker and the hl7apy v2.6 structure where hl7apy has one. Regenerate after an
intended change with ``PUMPGW_REGEN_GOLDEN=1`` and review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message as hl7apy_parse

from common.pcd.conformance import check_message
from common.pcd.parse import parse_message
from drivers.model import ChannelState
from gateway.events.model import EventKind, PumpEvent
from gateway.hl7 import encode_pcd01, encode_pcd04, encode_pcd10
from tests.gateway.hl7.conftest import (
    OCCLUSION,
    TF_EVENT_TIME,
    make_context,
    one_channel_pump,
    two_channel_pump,
)

GOLDEN = Path(__file__).parent / "golden"
TF_PCD10 = Path(__file__).parent / "tf_examples" / "ihe-dev-tf10_M1.2.2_pcd10_delivery-start.hl7"


def titration_events() -> tuple[PumpEvent, PumpEvent]:
    """The TF's dopamine at 5.00 ug/kg/min (15.4 mL/h) titrated to 6.50 (20.0 mL/h), as the
    event tracker derives it from two successive snapshots."""
    from dataclasses import replace

    from gateway.events.tracker import PumpEventTracker
    from tests.gateway.hl7.conftest import dopamine_channel, q

    before = one_channel_pump()
    after = replace(
        before,
        received_at=before.received_at.replace(minute=31),
        device_time=before.device_time.replace(minute=31),
        channels=(
            dopamine_channel(rate=q("20.0", "mL/h"), dose_rate=q("6.50", "ug/kg/min"), volume_infused=q("2.6", "mL")),
        ),
    )
    tracker = PumpEventTracker("bed07-a")
    tracker.on_snapshot(before)
    stop, start = tracker.on_snapshot(after)
    return stop, start


def _cases():
    snap = one_channel_pump()
    ctx = make_context()
    onset = PumpEvent(
        EventKind.ALARM_ONSET,
        "bed07-a",
        TF_EVENT_TIME,
        channel_id="Primary",
        snapshot=one_channel_pump(ChannelState.ALARM),
        alarm=OCCLUSION,
        alert_instance_id="AL0001",
    )
    end = PumpEvent(
        EventKind.ALARM_END,
        "bed07-a",
        TF_EVENT_TIME.replace(minute=24),
        channel_id="Primary",
        snapshot=one_channel_pump(ChannelState.STOPPED),
        alarm=OCCLUSION,
        alert_instance_id="AL0001",
    )
    start = PumpEvent(EventKind.DELIVERY_START, "bed07-a", TF_EVENT_TIME, channel_id="Primary", snapshot=snap)
    stop, restart = titration_events()
    return {
        "pcd10_titration_stop": lambda: encode_pcd10(stop, make_context()),
        "pcd10_titration_start": lambda: encode_pcd10(restart, make_context()),
        "pcd01_one_channel": lambda: encode_pcd01(snap, ctx, pump_id="bed07-a"),
        "pcd01_two_channels": lambda: encode_pcd01(two_channel_pump(), make_context(), pump_id="bed08"),
        "pcd10_delivery_start": lambda: encode_pcd10(start, make_context()),
        "pcd04_occlusion_onset": lambda: encode_pcd04(onset, make_context()),
        "pcd04_occlusion_end": lambda: encode_pcd04(end, make_context()),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_encoder_output_equals_the_reviewed_golden_message(name):
    control_id, message = CASES[name]()
    path = GOLDEN / f"{name}.hl7"
    readable = message.replace(b"\r", b"\n")
    if os.environ.get("PUMPGW_REGEN_GOLDEN"):
        path.write_bytes(readable)
    assert readable == path.read_bytes()
    assert parse_message(message).msh.field(10) == control_id


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_message_passes_the_checker(name):
    assert check_message((GOLDEN / f"{name}.hl7").read_bytes()) == []


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if not n.startswith("pcd04")])
def test_golden_oru_r01_fits_the_hl7apy_v26_message_structure(name):
    """hl7apy knows ORU_R01 (PCD-01 and PCD-10), not ORU_R40 (see docs/hl7.md)."""
    text = (GOLDEN / f"{name}.hl7").read_text(encoding="utf-8").replace("\n", "\r")
    msg = hl7apy_parse(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    result = msg.children.get("ORU_R01_PATIENT_RESULT")
    assert result is not None and len(result) == 1
    groups = result[0].children
    assert [g.name for g in groups] == ["ORU_R01_PATIENT", "ORU_R01_ORDER_OBSERVATION"]
    order = groups[1]
    obx_count = len([c for c in order.children if c.name == "ORU_R01_OBSERVATION"])
    assert obx_count == len(parse_message(text).named("OBX"))


def _rows_by_refid(raw: bytes) -> dict[str, tuple[str, str, str]]:
    msg = parse_message(raw)
    return {s.component(3, 2): (s.field(2), s.raw_field(5).strip(), s.field(6)) for s in msg.named("OBX")}


def test_pcd10_delivery_start_matches_the_tf_sample_row_for_row():
    """Same codes, value types, values and units as TF2-R10 M.1.2.2 for every parameter we know.

    The sample's program delivery mode, remaining volume and time are not reported by any
    pumpgw driver (no interpolation, §3.1.4.1.3); the device clock row is ours (B.8.8).
    """
    ours = _rows_by_refid((GOLDEN / "pcd10_delivery_start.hl7").read_bytes())
    tf = _rows_by_refid(TF_PCD10.read_bytes())
    assert set(tf) - set(ours) == {
        "MDC_DEV_PUMP_PROGRAM_DELIVERY_MODE",
        "MDC_VOL_FLUID_TBI_REMAIN",
        "MDC_TIME_PD_REMAIN",
    }
    assert set(ours) - set(tf) == {"MDC_ATTR_TIME_ABS"}
    for refid in set(tf) & set(ours):
        assert ours[refid] == tf[refid], refid


def test_pcd04_end_points_back_to_the_onset_through_obr29():
    onset = parse_message((GOLDEN / "pcd04_occlusion_onset.hl7").read_bytes())
    end = parse_message((GOLDEN / "pcd04_occlusion_end.hl7").read_bytes())
    onset_obr, end_obr = onset.named("OBR")[0], end.named("OBR")[0]
    assert onset_obr.component(3, 1) == "AL0001"
    assert onset_obr.field(29) == ""
    assert end_obr.components(3) != onset_obr.components(3)
    assert end_obr.components(29)[1].split("&") == onset_obr.components(3)
