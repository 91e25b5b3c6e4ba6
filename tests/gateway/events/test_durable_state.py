"""The tracker's durable state: export/restore round trip, refused rows, latched alarms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.model import Alarm, AlarmPriority, ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity
from gateway.events.model import EventKind
from gateway.events.state_codec import STATE_VERSION, StateRowError, decode_state, encode_state, state_dict
from gateway.events.tracker import PumpEventTracker

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
STALL = Alarm("A?S", "motor_stalled", "pump motor stalled", latched=True)
OCCL = Alarm("E40", "occlusion", "Occlusion", AlarmPriority.MEDIUM)


def snap(t: float, state=ChannelState.INFUSING, alarms=(), rate="5", serial="S1") -> PumpSnapshot:
    ch = ChannelSnapshot(
        "1",
        state,
        rate=Quantity(Decimal(rate), "mL/h"),
        vtbi=Quantity(Decimal("50"), "mL"),
        drug="Heparin",
        alarms=tuple(alarms),
    )
    return PumpSnapshot(
        "p1", PumpIdentity("M", "X", serial_number=serial), (ch,), received_at=T0 + timedelta(seconds=t)
    )


def kinds(events):
    return [e.kind for e in events]


def test_export_and_restore_round_trips_through_json_and_the_restored_tracker_continues():
    tracker = PumpEventTracker("p1")
    tracker.on_snapshot(snap(0))
    tracker.on_snapshot(snap(1, ChannelState.ALARM, [OCCL]))
    tracker.on_comm_lost(T0 + timedelta(seconds=5), "no reply")
    text = encode_state(tracker.export_state())
    restored = PumpEventTracker("p1")
    restored.restore_state(decode_state("p1", STATE_VERSION, text))
    assert state_dict(restored.export_state()) == state_dict(tracker.export_state())
    events = restored.on_snapshot(snap(10, ChannelState.ALARM, [OCCL]))
    assert kinds(events) == [EventKind.COMM_RESTORED]  # nothing started, no new onset


@pytest.mark.parametrize(
    ("version", "text", "expected"),
    [
        (STATE_VERSION + 1, "{}", "newer than this pumpgw"),
        (0, "{}", "unknown format version"),
        (STATE_VERSION, "[]", "top level is not an object"),
        (STATE_VERSION, '{"identity": null, "channels": [], "alarms": [{"code": 1}], "lost": null}', "KeyError"),
        (STATE_VERSION, '{"identity": null, "channels": [], "alarms": [], "lost": ["yesterday", "x"]}', "ValueError"),
    ],
)
def test_an_unusable_state_row_raises_a_named_error_with_the_pump(version, text, expected):
    with pytest.raises(StateRowError) as info:
        decode_state("bed07", version, text)
    assert info.value.pump_id == "bed07" and expected in str(info.value) and "bed07" in str(info.value)


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=300)
    | st.from_regex(
        r'\{"identity": .{0,40}, "channels": \[.{0,60}\], "alarms": \[\], '
        r'"lost": null\}',
        fullmatch=True,
    )
)
def test_any_stored_text_either_decodes_or_is_refused_by_name_never_another_exception(text):
    try:
        decode_state("p1", STATE_VERSION, text)
    except StateRowError as exc:
        assert exc.pump_id == "p1"


def test_a_latched_alarm_stays_active_while_the_pump_stays_stopped_and_ends_when_it_infuses_again():
    tracker = PumpEventTracker("p1")
    tracker.on_snapshot(snap(0))
    onset = tracker.on_snapshot(snap(1, ChannelState.ALARM, [STALL]))  # the reply that acknowledged it
    assert kinds(onset) == [EventKind.ALARM_ONSET, EventKind.DELIVERY_STOP]
    for t in range(2, 10):  # later replies do not repeat it; the pump is still stopped
        assert tracker.on_snapshot(snap(t, ChannelState.STOPPED)) == []
    assert list(tracker.active_alarms.values()) == [onset[0].alert_instance_id]
    resumed = tracker.on_snapshot(snap(11))
    assert kinds(resumed) == [EventKind.ALARM_END, EventKind.DELIVERY_START]
    assert resumed[0].alert_instance_id == onset[0].alert_instance_id


def test_an_unlatched_alarm_ends_when_the_pump_no_longer_reports_it():
    tracker = PumpEventTracker("p1")
    tracker.on_snapshot(snap(0, ChannelState.ALARM, [OCCL]))
    assert kinds(tracker.on_snapshot(snap(1, ChannelState.STOPPED))) == [EventKind.ALARM_END]


def test_a_latched_alarm_survives_a_restart_and_is_continued_under_its_onset():
    tracker = PumpEventTracker("p1")
    onset = tracker.on_snapshot(snap(0, ChannelState.ALARM, [STALL]))[0]
    restored = PumpEventTracker("p1")
    restored.restore_state(decode_state("p1", STATE_VERSION, encode_state(tracker.export_state())))
    follow = restored.on_snapshot(snap(120, ChannelState.STOPPED))  # 60 s continue interval passed
    assert kinds(follow) == [EventKind.ALARM_CONTINUE]
    assert follow[0].alert_instance_id == onset.alert_instance_id
