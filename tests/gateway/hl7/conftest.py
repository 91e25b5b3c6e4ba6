"""Fixtures: a fixed encoding context and the pumps of the golden messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from drivers.model import Alarm, AlarmPriority, ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity
from gateway.hl7 import ControlIdGenerator, EncodeContext, PumpInfo

GATEWAY_EUI = "0012211839000001"
# The TF's M.1.2.2 sample time, 2015-10-15 13:21:06 at UTC-5.
TF_EVENT_TIME = datetime(2015, 10, 15, 13, 21, 6, tzinfo=timezone(timedelta(hours=-5)))
CREATED = datetime(2015, 10, 15, 18, 21, 7, tzinfo=UTC)


def q(value: str, unit: str) -> Quantity:
    return Quantity(Decimal(value), unit)


def make_context(**overrides) -> EncodeContext:
    """The golden context: fixed clock (MSH-7) and a fixed-clock MSH-10 generator."""
    fields = dict(
        site="stmarys",
        ward="icu-3",
        gateway_id="gw-icu3-01",
        eui64=GATEWAY_EUI,
        control_ids=ControlIdGenerator(GATEWAY_EUI, clock_ms=lambda: 1444933267000),
        country="USA",
        receiving_application="DOC_VENDOR",
        receiving_facility="DOC_VENDOR",
        processing_id="D",
        clock=lambda: CREATED,
        pumps={
            "bed07-a": PumpInfo("bed07-a", location="ICU-3 bed 7", care_area="Crit Care", pump_type="lvp"),
            "bed08": PumpInfo("bed08", location="ICU-3 bed 8"),
        },
    )
    fields.update(overrides)
    return EncodeContext(**fields)


@pytest.fixture
def ctx() -> EncodeContext:
    return make_context()


def dopamine_channel(state: ChannelState = ChannelState.INFUSING, **changes) -> ChannelSnapshot:
    """The TF's M.1.2.2 infusion: dopamine 1.6 mg/mL at 5.00 ug/kg/min = 15.4 mL/h, 82.0 kg."""
    fields = dict(
        channel_id="Primary",
        state=state,
        rate=q("15.4", "mL/h"),
        vtbi=q("250.0", "mL"),
        volume_infused=q("0.0", "mL"),
        drug="Dopamine",
        concentration=q("1.6", "mg/mL"),
        dose_rate=q("5.00", "ug/kg/min"),
        care_area="Crit Care",
        patient_weight=q("82.0", "kg"),
    )
    fields.update(changes)
    return ChannelSnapshot(**fields)


def one_channel_pump(state: ChannelState = ChannelState.INFUSING) -> PumpSnapshot:
    return PumpSnapshot(
        pump_id="bed07-a",
        identity=PumpIdentity("PUMPVENDOR", "LVP-1", serial_number="E0002", drug_library_version="DL1"),
        channels=(dopamine_channel(state),),
        received_at=TF_EVENT_TIME,
        device_time=datetime(2015, 10, 15, 13, 21, 5),
    )


def two_channel_pump() -> PumpSnapshot:
    heparin = ChannelSnapshot(
        channel_id="B",
        state=ChannelState.PAUSED,
        rate=q("12", "mL/h"),
        vtbi=q("50", "mL"),
        volume_infused=q("7.25", "mL"),
        drug="Heparin 25000 [iU]/250 mL",
        concentration=q("100", "[iU]/mL"),
    )
    return PumpSnapshot(
        pump_id="bed08",
        identity=PumpIdentity("B. Braun", "Space", serial_number="SP-88121", drug_library_version="ICU-2024-07"),
        channels=(dopamine_channel(channel_id="A"), heparin),
        received_at=datetime(2024, 7, 1, 8, 30, 0, tzinfo=UTC),
    )


OCCLUSION = Alarm(code="E40", kind="occlusion", text="Occlusion downstream", priority=AlarmPriority.HIGH)
