"""Encoder behaviours beyond the golden messages: event coverage, unpublished codes, refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.pcd.conformance import check_message
from common.pcd.parse import parse_message, read_alerts
from drivers.model import Alarm, AlarmPriority, ChannelState
from gateway.events.model import EventKind, PumpEvent
from gateway.hl7 import (
    ControlIdGenerator,
    Hl7EncodeError,
    UnpublishedCodeError,
    encode_pcd01,
    encode_pcd04,
    encode_pcd10,
)
from tests.gateway.hl7.conftest import OCCLUSION, make_context, one_channel_pump

WHEN = datetime(2024, 7, 1, 8, 30, tzinfo=UTC)


def rows(message: bytes) -> dict[str, list[str]]:
    return {s.component(3, 2): s.components(5) for s in parse_message(message).named("OBX")}


def test_unpublished_event_codes_are_sent_as_pending_zero_codes_by_default():
    event = PumpEvent(
        EventKind.DELIVERY_STOP, "bed07-a", WHEN, channel_id="Primary", snapshot=one_channel_pump(ChannelState.STOPPED)
    )
    _cid, message = encode_pcd10(event, make_context())
    assert rows(message)["MDC_ATTR_EVT_COND"][:3] == ["0", "MDC_EVT_PUMP_DELIV_STOP", "MDC"]
    assert rows(message)["MDC_DEV_PUMP_NOT_DELIVERING_REASON"][:2] == ["", "pump-stopped-not-specified"]
    assert check_message(message) == []


def test_unpublished_event_codes_are_refused_when_configured_to_omit():
    event = PumpEvent(
        EventKind.DELIVERY_COMPLETE, "bed07-a", WHEN, channel_id="Primary", snapshot=one_channel_pump(ChannelState.KVO)
    )
    with pytest.raises(UnpublishedCodeError) as info:
        encode_pcd10(event, make_context(unpublished_codes="omit"))
    assert (info.value.refid, info.value.pump_id) == ("MDC_EVT_PUMP_DELIV_COMP", "bed07-a")


def test_omit_policy_still_sends_published_events_without_unpublished_rows():
    event = PumpEvent(EventKind.DELIVERY_START, "bed07-a", WHEN, channel_id="Primary", snapshot=one_channel_pump())
    _cid, message = encode_pcd10(event, make_context(unpublished_codes="omit"))
    assert "MDC_EVT_PUMP_DELIV_START" in rows(message)["MDC_ATTR_EVT_COND"]
    _cid, report = encode_pcd01(
        one_channel_pump(ChannelState.PAUSED), make_context(unpublished_codes="omit"), pump_id="bed07-a"
    )
    assert "MDC_DEV_PUMP_NOT_DELIVERING_REASON" not in rows(report)
    assert check_message(report) == []


@pytest.mark.parametrize(
    ("kind", "status"), [(EventKind.COMM_LOST, "comm-status-offline"), (EventKind.COMM_RESTORED, "comm-status-online")]
)
def test_communication_events_without_a_snapshot_carry_only_mds_rows_and_the_status(kind, status):
    _cid, message = encode_pcd10(PumpEvent(kind, "bed07-a", WHEN), make_context())
    parsed = parse_message(message)
    assert [s.field(4) for s in parsed.named("OBX")] == ["1.0.0.0", "1.0.0.1", "1.0.0.2", "1.0.0.3"]
    assert rows(message)["MDC_ATTR_TIME_ABS"] == ["20240701083000+0000"]  # B.8.8: the gateway is the time base
    cond = rows(message)["MDC_ATTR_EVT_COND"]
    assert (cond[1], cond[8]) == ("MDC_EVT_COMM_STATUS_CHANGE", status)
    assert rows(message)["MDC_ATTR_EVT_SOURCE"] == ["1.0.0.0"]
    assert check_message(message) == []


@pytest.mark.parametrize("kind", [EventKind.IDENTITY_CHANGED, EventKind.ALARM_ONSET])
def test_event_kinds_outside_pcd10_are_refused_with_the_pump_id(kind):
    with pytest.raises(Hl7EncodeError) as info:
        encode_pcd10(PumpEvent(kind, "bed07-a", WHEN), make_context())
    assert info.value.pump_id == "bed07-a"


def test_an_alarm_kind_without_a_published_code_is_sent_as_mdc_evt_alarm_with_its_text():
    alarm = Alarm("A17", "air_in_line", "Air in line", AlarmPriority.HIGH)
    event = PumpEvent(
        EventKind.ALARM_ONSET,
        "bed07-a",
        WHEN,
        channel_id="Primary",
        snapshot=one_channel_pump(),
        alarm=alarm,
        alert_instance_id="AL9",
    )
    _cid, message = encode_pcd04(event, make_context())
    (alert,) = read_alerts(parse_message(message))
    assert alert.event_value[:3] == ["196616", "MDC_EVT_ALARM", "MDC"]
    assert alert.event_value[8] == "Air in line"
    assert check_message(message) == []


def test_an_advisory_is_typed_sa_and_a_pump_level_alarm_sits_at_the_mds():
    alarm = Alarm("B1", "battery_low", "Battery low", AlarmPriority.ADVISORY)
    event = PumpEvent(
        EventKind.ALARM_CONTINUE, "bed07-a", WHEN, snapshot=one_channel_pump(), alarm=alarm, alert_instance_id="AL10"
    )
    _cid, message = encode_pcd04(event, make_context())
    (alert,) = read_alerts(parse_message(message))
    assert (alert.prefix, alert.alert_type, alert.priority, alert.phase) == ((1, 0, 0, 0), "SA", "PN", "continue")
    assert alert.event_value[:2] == ["196802", "MDC_EVT_BATT_LO"]
    assert alert.facets[2].components(5)[:2] == ["70049", "MDC_DEV_PUMP_INFUS_LVP_MDS"]
    assert check_message(message) == []


def test_an_alarm_event_without_an_instance_id_is_refused():
    event = PumpEvent(EventKind.ALARM_ONSET, "bed07-a", WHEN, alarm=OCCLUSION)
    with pytest.raises(Hl7EncodeError):
        encode_pcd04(event, make_context())


def test_a_naive_event_time_is_refused_not_guessed():
    event = PumpEvent(
        EventKind.DELIVERY_START,
        "bed07-a",
        datetime(2024, 7, 1, 8, 30),
        channel_id="Primary",
        snapshot=one_channel_pump(),
    )
    with pytest.raises(Hl7EncodeError) as info:
        encode_pcd10(event, make_context())
    assert info.value.field == "OBR-7"


def test_the_legacy_device_identifier_form_is_used_when_configured():
    from dataclasses import replace

    ctx = make_context(device_id_style="legacy")
    ctx.pumps = {"bed07-a": replace(ctx.pump("bed07-a"), legacy_universal_id="pumpvendor.com")}
    _cid, message = encode_pcd01(one_channel_pump(), ctx, pump_id="bed07-a")
    mds = parse_message(message).named("OBX")[0]
    assert mds.components(18) == ["E0002", "LVP-1", "pumpvendor.com", "DNS"]


def test_the_pumps_own_eui64_is_preferred_over_the_gateways():
    from dataclasses import replace

    ctx = make_context()
    ctx.pumps = {"bed07-a": replace(ctx.pump("bed07-a"), eui64="00a0b1fffe000042")}
    _cid, message = encode_pcd01(one_channel_pump(), ctx, pump_id="bed07-a")
    assert parse_message(message).named("OBX")[0].components(18) == ["E0002", "", "00A0B1FFFE000042", "EUI-64"]


def test_each_message_gets_a_fresh_control_id_and_the_header_carries_the_processing_id():
    ctx = make_context(control_ids=ControlIdGenerator("0012211839000001"))
    ids = [encode_pcd01(one_channel_pump(), ctx, pump_id="bed07-a")[0] for _ in range(50)]
    assert len(set(ids)) == 50
    msh = parse_message(encode_pcd01(one_channel_pump(), ctx, pump_id="bed07-a")[1]).msh
    assert (msh.field(11), msh.field(17), msh.components(3)) == (
        "D",
        "USA",
        ["PUMPGW_gw-icu3-01", "0012211839000001", "EUI-64"],
    )


def test_a_kvo_completion_carries_all_three_delivery_info_rows_with_the_unknown_kvo_flow_flagged_nav():
    event = PumpEvent(
        EventKind.DELIVERY_COMPLETE, "bed07-a", WHEN, channel_id="Primary", snapshot=one_channel_pump(ChannelState.KVO)
    )
    _cid, message = encode_pcd10(event, make_context())
    flow = next(s for s in parse_message(message).named("OBX") if s.component(3, 2) == "MDC_FLOW_FLUID_PUMP_CURRENT")
    assert (flow.field(5), flow.field(8), flow.field(11)) == ("", "NAV", "X")
    assert rows(message)["MDC_DEV_PUMP_ACTIVE_SOURCES"][1] == "pump-source-info-primary"
    assert check_message(message) == []


def test_a_stop_carries_the_active_source_required_by_table_m_1_2_1_1():
    event = PumpEvent(
        EventKind.DELIVERY_STOP, "bed07-a", WHEN, channel_id="Primary", snapshot=one_channel_pump(ChannelState.STOPPED)
    )
    _cid, message = encode_pcd10(event, make_context())
    assert {"MDC_PUMP_INFUSING_STATUS", "MDC_FLOW_FLUID_PUMP_CURRENT", "MDC_DEV_PUMP_ACTIVE_SOURCES"} <= set(
        rows(message)
    )
    assert check_message(message) == []


def test_a_pump_level_alarm_reported_under_a_channel_is_attributed_to_the_mds():
    alarm = Alarm("BAT", "battery_low", "Battery low", AlarmPriority.LOW)
    event = PumpEvent(
        EventKind.ALARM_ONSET,
        "bed07-a",
        WHEN,
        channel_id="Primary",
        snapshot=one_channel_pump(),
        alarm=alarm,
        alert_instance_id="AL11",
    )
    _cid, message = encode_pcd04(event, make_context())
    (alert,) = read_alerts(parse_message(message))
    assert alert.prefix == (1, 0, 0, 0)
    assert alert.facets[2].components(5)[:2] == ["70049", "MDC_DEV_PUMP_INFUS_LVP_MDS"]
    assert alert.event_value[8] == "Battery low"
    assert check_message(message) == []


def test_every_message_of_one_pump_carries_one_device_identity_never_the_gateways_eui64():
    from tests.gateway.hl7.conftest import GATEWAY_EUI

    snap = one_channel_pump()
    ctx = make_context()
    known = snap.identity
    messages = [
        encode_pcd01(snap, ctx, pump_id="bed07-a", identity=known)[1],
        encode_pcd10(PumpEvent(EventKind.COMM_LOST, "bed07-a", WHEN), ctx, identity=known)[1],
        encode_pcd10(
            PumpEvent(EventKind.DELIVERY_START, "bed07-a", WHEN, channel_id="Primary", snapshot=snap),
            ctx,
            identity=known,
        )[1],
        encode_pcd04(
            PumpEvent(
                EventKind.ALARM_ONSET,
                "bed07-a",
                WHEN,
                channel_id="Primary",
                snapshot=snap,
                alarm=OCCLUSION,
                alert_instance_id="AL12",
            ),
            ctx,
            identity=known,
        )[1],
    ]
    ids = {next(s.field(18) for s in parse_message(m).named("OBX") if s.field(18)) for m in messages}
    assert ids == {"E0002^LVP-1^PUMPVENDOR^L"}
    assert not any(GATEWAY_EUI in i for i in ids)


def test_the_stop_of_a_removed_channel_names_the_source_its_start_named():
    from tests.gateway.hl7.conftest import dopamine_channel

    before = one_channel_pump()
    gone = PumpEvent(
        EventKind.DELIVERY_STOP,
        "bed07-a",
        WHEN,
        channel_id="B",
        snapshot=before,
        previous_channel=dopamine_channel(channel_id="B"),
        detail={"reason": "channel_removed", "ordinal": "2"},
    )
    _cid, message = encode_pcd10(gone, make_context())
    assert rows(message)["MDC_ATTR_EVT_SOURCE"] == ["1.2.2.0"]
    assert rows(message)["MDC_DEV_PUMP_SOURCE_CHANNEL_LABEL"] == ["B"]
    assert "MDC_DEV_PUMP_CURRENT_DELIVERY_STATUS" not in rows(message)  # cannot be observed any more
    assert check_message(message) == []
