"""Alarm onset / continue / end per (channel, code) with a stable alert instance id (ihe-pcd.md §7)."""

from __future__ import annotations

from datetime import timedelta

from drivers.model import AlarmPriority, ChannelState
from gateway.events.model import EventKind
from gateway.events.tracker import PumpEventTracker
from tests.gateway.events.snapshots import AIR, BATTERY, OCCLUSION, PUMP, at, channel, counter_ids, snap

STOPPED, ALARM, INFUSING = ChannelState.STOPPED, ChannelState.ALARM, ChannelState.INFUSING


def alarm_events(events):
    return [(e.kind, e.channel_id, e.alarm.code, e.alert_instance_id) for e in events if e.is_alarm]


def test_onset_continue_and_end_share_one_alert_instance_id():
    tracker = PumpEventTracker(PUMP, instance_ids=counter_ids())
    onset = tracker.on_snapshot(snap(0, channel(ALARM, alarms=(OCCLUSION,))))
    cont = tracker.on_snapshot(snap(60, channel(ALARM, alarms=(OCCLUSION,))))
    end = tracker.on_snapshot(snap(70, channel(STOPPED)))
    assert alarm_events(onset + cont + end) == [
        (EventKind.ALARM_ONSET, "A", "OCC", "alert-1"),
        (EventKind.ALARM_CONTINUE, "A", "OCC", "alert-1"),
        (EventKind.ALARM_END, "A", "OCC", "alert-1"),
    ]
    assert end[0].alarm == OCCLUSION and end[0].occurred_at == at(70)
    assert tracker.active_alarms == {}


def test_continue_is_emitted_only_once_the_interval_has_passed_since_the_last_report():
    tracker = PumpEventTracker(PUMP, alarm_continue_interval=timedelta(seconds=30))
    sounding = channel(ALARM, alarms=(OCCLUSION,))
    times_with_continue = [t for t in range(0, 100, 10) if alarm_events(tracker.on_snapshot(snap(t, sounding)))]
    assert times_with_continue == [0, 30, 60, 90]  # onset at 0, then every 30 s


def test_no_continue_at_all_when_the_interval_is_none():
    tracker = PumpEventTracker(PUMP, alarm_continue_interval=None)
    sounding = channel(ALARM, alarms=(OCCLUSION,))
    events = [e for t in range(0, 600, 60) for e in tracker.on_snapshot(snap(t, sounding))]
    assert [e.kind for e in events] == [EventKind.ALARM_ONSET]


def test_a_priority_change_is_reported_at_once_as_a_continue_naming_the_change():
    tracker = PumpEventTracker(PUMP, instance_ids=counter_ids())
    tracker.on_snapshot(snap(0, channel(STOPPED, alarms=(BATTERY,))))
    escalated = BATTERY.__class__(BATTERY.code, BATTERY.kind, "Battery depleted", AlarmPriority.HIGH)
    events = tracker.on_snapshot(snap(5, channel(STOPPED, alarms=(escalated,))))
    assert alarm_events(events) == [(EventKind.ALARM_CONTINUE, "A", "BAT", "alert-1")]
    assert events[0].detail == {"changed": "priority,text"}
    assert events[0].alarm.priority is AlarmPriority.HIGH


def test_the_same_code_on_two_channels_is_two_alerts():
    tracker = PumpEventTracker(PUMP, instance_ids=counter_ids())
    events = tracker.on_snapshot(
        snap(0, channel(ALARM, channel_id="A", alarms=(AIR,)), channel(ALARM, channel_id="B", alarms=(AIR,)))
    )
    assert alarm_events(events) == [
        (EventKind.ALARM_ONSET, "A", "AIR", "alert-1"),
        (EventKind.ALARM_ONSET, "B", "AIR", "alert-2"),
    ]


def test_a_code_repeated_within_one_channel_is_one_alert():
    tracker = PumpEventTracker(PUMP)
    events = tracker.on_snapshot(snap(0, channel(ALARM, alarms=(OCCLUSION, OCCLUSION))))
    assert [e.kind for e in events] == [EventKind.ALARM_ONSET]


def test_an_alarm_that_returns_after_ending_gets_a_new_instance_id():
    tracker = PumpEventTracker(PUMP, instance_ids=counter_ids())
    tracker.on_snapshot(snap(0, channel(ALARM, alarms=(OCCLUSION,))))
    tracker.on_snapshot(snap(10, channel(STOPPED)))
    events = tracker.on_snapshot(snap(20, channel(ALARM, alarms=(OCCLUSION,))))
    assert alarm_events(events) == [(EventKind.ALARM_ONSET, "A", "OCC", "alert-2")]


def test_an_alarm_outlives_a_comm_loss_and_ends_only_when_seen_gone():
    tracker = PumpEventTracker(PUMP, instance_ids=counter_ids())
    tracker.on_snapshot(snap(0, channel(ALARM, alarms=(OCCLUSION,))))
    lost = tracker.on_comm_lost(at(30), "no reply for 3 polls")
    assert [e.kind for e in lost] == [EventKind.COMM_LOST]
    assert tracker.active_alarms == {("A", "OCC"): "alert-1"}
    back = tracker.on_snapshot(snap(45, channel(ALARM, alarms=(OCCLUSION,))))
    assert [e.kind for e in back] == [EventKind.COMM_RESTORED]  # still sounding, continue not yet due
    gone = tracker.on_snapshot(snap(50, channel(STOPPED)))
    assert alarm_events(gone) == [(EventKind.ALARM_END, "A", "OCC", "alert-1")]


def test_alarms_sounding_at_startup_are_onsets_flagged_baseline():
    events = PumpEventTracker(PUMP).on_snapshot(snap(0, channel(STOPPED, alarms=(BATTERY,))))
    assert [(e.kind, e.detail) for e in events] == [(EventKind.ALARM_ONSET, {"baseline": "true"})]


def test_default_instance_ids_are_unique_across_tracker_restarts():
    ids = set()
    for _ in range(50):  # each tracker stands for a gateway process restart
        events = PumpEventTracker(PUMP).on_snapshot(snap(0, channel(ALARM, alarms=(OCCLUSION, AIR))))
        ids.update(e.alert_instance_id for e in events)
    assert len(ids) == 100


def test_a_removed_channel_ends_its_alarms_saying_why():
    tracker = PumpEventTracker(PUMP, instance_ids=counter_ids())
    tracker.on_snapshot(snap(0, channel(ALARM, channel_id="A", alarms=(AIR,)), channel(STOPPED, channel_id="B")))
    events = tracker.on_snapshot(snap(10, channel(STOPPED, channel_id="B")))
    assert alarm_events(events) == [(EventKind.ALARM_END, "A", "AIR", "alert-1")]
    assert events[0].detail == {"reason": "channel_removed"}


def test_alarm_onsets_come_before_the_delivery_stop_they_caused():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(INFUSING)))
    events = tracker.on_snapshot(snap(10, channel(ALARM, alarms=(OCCLUSION, AIR))))
    assert [e.kind for e in events] == [EventKind.ALARM_ONSET, EventKind.ALARM_ONSET, EventKind.DELIVERY_STOP]
    assert len({e.occurred_at for e in events}) == 1


def test_in_one_snapshot_onsets_precede_continues_precede_ends():
    tracker = PumpEventTracker(PUMP, alarm_continue_interval=timedelta(seconds=10))
    battery_on_b = channel(STOPPED, channel_id="B", alarms=(BATTERY,))
    tracker.on_snapshot(snap(0, channel(ALARM, channel_id="A", alarms=(OCCLUSION,)), battery_on_b))
    events = tracker.on_snapshot(snap(10, channel(ALARM, channel_id="A", alarms=(AIR,)), battery_on_b))
    assert [(e.kind, e.alarm.code) for e in events] == [
        (EventKind.ALARM_ONSET, "AIR"),
        (EventKind.ALARM_CONTINUE, "BAT"),
        (EventKind.ALARM_END, "OCC"),
    ]
