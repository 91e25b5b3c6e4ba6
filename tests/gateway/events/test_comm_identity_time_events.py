"""Communication status, identity and device clock events; event times; refused input."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from drivers.model import ChannelState, PumpIdentity
from gateway.errors import PumpgwError
from gateway.events.errors import ForeignSnapshotError, NaiveTimestampError
from gateway.events.model import EventKind
from gateway.events.tracker import PumpEventTracker
from tests.gateway.events.snapshots import IDENTITY, OCCLUSION, PUMP, T0, at, channel, counter_ids, snap

INFUSING, STOPPED, KVO, ALARM = ChannelState.INFUSING, ChannelState.STOPPED, ChannelState.KVO, ChannelState.ALARM


def kinds(events):
    return [e.kind for e in events]


def test_comm_lost_is_reported_once_and_restored_by_the_next_snapshot():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED)))
    lost = tracker.on_comm_lost(at(20), "timeout")
    assert [(e.kind, e.occurred_at, e.snapshot, e.detail) for e in lost] == [
        (EventKind.COMM_LOST, at(20), None, {"reason": "timeout"})
    ]
    assert tracker.on_comm_lost(at(25), "timeout") == []
    assert tracker.comm_lost
    restored = tracker.on_snapshot(snap(40, channel(STOPPED)))
    assert kinds(restored) == [EventKind.COMM_RESTORED]
    assert restored[0].occurred_at == at(40)
    assert restored[0].detail == {"lost_at": at(20).isoformat(), "reason": "timeout"}
    assert not tracker.comm_lost


def test_comm_lost_before_any_snapshot_is_reported_and_the_first_snapshot_restores_it():
    tracker = PumpEventTracker(PUMP)
    assert kinds(tracker.on_comm_lost(at(0), "port missing")) == [EventKind.COMM_LOST]
    events = tracker.on_snapshot(snap(5, channel(INFUSING)))
    assert [(e.kind, e.detail.get("baseline")) for e in events] == [
        (EventKind.COMM_RESTORED, None),
        (EventKind.DELIVERY_START, "true"),
    ]


def test_comm_loss_stops_nothing_and_what_changed_meanwhile_is_reported_at_restore():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(INFUSING)))
    assert kinds(tracker.on_comm_lost(at(10), "timeout")) == [EventKind.COMM_LOST]
    events = tracker.on_snapshot(snap(600, channel(KVO, infused="100")))
    assert kinds(events) == [EventKind.COMM_RESTORED, EventKind.DELIVERY_COMPLETE]
    assert events[1].occurred_at == at(600)


def test_firmware_change_is_identity_changed_with_the_previous_identity():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(INFUSING)))
    upgraded = PumpIdentity("New Era", "NE-1000", "SN-100", "4.001", "L7")
    events = tracker.on_snapshot(snap(10, channel(INFUSING), identity=upgraded))
    assert kinds(events) == [EventKind.IDENTITY_CHANGED]
    assert events[0].previous_identity == IDENTITY
    assert events[0].detail == {"changed": "firmware"}
    assert tracker.identity == upgraded


def test_drug_library_version_change_is_identity_changed():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED)))
    new_library = PumpIdentity("New Era", "NE-1000", "SN-100", "3.928", "L8")
    events = tracker.on_snapshot(snap(10, channel(STOPPED), identity=new_library))
    assert [(e.kind, e.detail) for e in events] == [(EventKind.IDENTITY_CHANGED, {"changed": "drug_library_version"})]


def test_an_identity_field_not_reported_in_one_poll_is_not_a_change():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED)))
    partial = PumpIdentity("New Era", "NE-1000")
    assert tracker.on_snapshot(snap(10, channel(STOPPED), identity=partial)) == []
    assert tracker.identity == IDENTITY
    assert tracker.on_snapshot(snap(20, channel(STOPPED))) == []


def test_a_new_serial_number_is_a_device_replacement_that_closes_the_old_device_and_baselines_the_new():
    tracker = PumpEventTracker(PUMP, instance_ids=counter_ids())
    tracker.on_snapshot(snap(0, channel(ALARM, alarms=(OCCLUSION,)), channel(INFUSING, channel_id="B")))
    other = PumpIdentity("New Era", "NE-1000", "SN-999", "3.928", "L7")
    same_state = (channel(ALARM, alarms=(OCCLUSION,)), channel(INFUSING, channel_id="B"))
    events = tracker.on_snapshot(snap(10, *same_state, identity=other))
    summary = [
        (e.kind, e.channel_id, e.alert_instance_id, e.detail.get("reason"), e.detail.get("baseline")) for e in events
    ]
    assert summary == [
        (EventKind.IDENTITY_CHANGED, None, None, None, None),
        (EventKind.ALARM_END, "A", "alert-1", "device_replaced", None),
        (EventKind.DELIVERY_STOP, "B", None, "device_replaced", None),
        (EventKind.ALARM_ONSET, "A", "alert-2", None, "true"),
        (EventKind.DELIVERY_START, "B", None, None, "true"),
    ]
    assert events[0].previous_identity.serial_number == "SN-100"


def test_occurred_at_without_device_time_is_the_reply_receipt_time():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED)))
    assert tracker.on_snapshot(snap(10, channel(INFUSING), latency_s=1.5))[0].occurred_at == at(11.5)


def test_occurred_at_is_device_time_corrected_so_a_slow_reply_does_not_delay_the_event():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED), device_offset_s=-3600, latency_s=0.2))
    events = tracker.on_snapshot(snap(10, channel(INFUSING), device_offset_s=-3600, latency_s=3.2))
    assert events[0].occurred_at == at(10.2)  # the pump produced it 3 s before it arrived
    assert events[0].occurred_at <= events[0].snapshot.received_at


def test_a_device_clock_jump_beyond_the_threshold_is_device_time_changed():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED), device_offset_s=5))
    events = tracker.on_snapshot(snap(10, channel(STOPPED), device_offset_s=5 + 3600))
    assert [(e.kind, e.detail) for e in events] == [
        (
            EventKind.DEVICE_TIME_CHANGED,
            {"previous_offset_s": "5.000", "offset_s": "3605.000", "change_s": "3600.000"},
        )
    ]
    assert events[0].occurred_at == at(10)


def test_clock_steps_within_the_threshold_and_slow_drift_are_not_device_time_changes():
    tracker = PumpEventTracker(PUMP, device_time_jump=timedelta(seconds=60))
    offsets = [0, 30, 59, 100, 150, 209, 150]  # each step <= 59 s, 209 s in total
    shots = [snap(10 * i, channel(STOPPED), device_offset_s=off) for i, off in enumerate(offsets)]
    events = [e for shot in shots for e in tracker.on_snapshot(shot)]
    assert events == []


def test_after_a_small_backward_clock_step_event_times_follow_the_new_offset_at_once():
    tracker = PumpEventTracker(PUMP)
    for i in range(4):
        tracker.on_snapshot(snap(10 * i, channel(STOPPED), device_offset_s=30))
    events = tracker.on_snapshot(snap(40, channel(INFUSING), device_offset_s=20))
    assert events[0].occurred_at == at(40)


def test_a_naive_device_time_is_read_in_the_receipt_zone_and_only_its_changes_matter():
    tracker = PumpEventTracker(PUMP)
    cest = timezone(timedelta(hours=2))
    first = snap(0, channel(STOPPED))
    local = (first.received_at.astimezone(cest)).replace(tzinfo=None)
    assert tracker.on_snapshot(first.__class__(PUMP, IDENTITY, first.channels, first.received_at, local)) == []
    second = snap(10, channel(INFUSING))
    later_local = local + timedelta(seconds=10)
    events = tracker.on_snapshot(second.__class__(PUMP, IDENTITY, second.channels, second.received_at, later_local))
    assert kinds(events) == [EventKind.DELIVERY_START]
    assert events[0].occurred_at == at(10)


def test_event_times_never_go_backwards_when_the_gateway_clock_is_stepped_back():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(100, channel(STOPPED)))
    events = tracker.on_snapshot(snap(40, channel(INFUSING)))
    assert events[0].occurred_at == at(100)
    assert tracker.on_comm_lost(at(50), "timeout")[0].occurred_at == at(100)


def test_a_snapshot_of_another_pump_is_refused_and_changes_nothing():
    tracker = PumpEventTracker("other-pump")
    with pytest.raises(ForeignSnapshotError) as caught:
        tracker.on_snapshot(snap(0, channel(INFUSING)))
    assert isinstance(caught.value, PumpgwError)
    assert (caught.value.expected_pump_id, caught.value.got_pump_id) == ("other-pump", PUMP)
    assert "expected pump_id 'other-pump', got 'icu3-bed4'" in str(caught.value)
    assert tracker.state is None


def test_a_naive_receipt_time_is_refused_naming_the_field():
    tracker = PumpEventTracker(PUMP)
    good = snap(0, channel(INFUSING))
    naive = good.__class__(PUMP, IDENTITY, good.channels, datetime(2024, 3, 1, 8, 0))
    with pytest.raises(NaiveTimestampError, match="received_at must be timezone-aware"):
        tracker.on_snapshot(naive)
    with pytest.raises(NaiveTimestampError, match="at must be timezone-aware"):
        tracker.on_comm_lost(datetime(2024, 3, 1, 8, 0), "timeout")
    assert tracker.state is None and not tracker.comm_lost


def test_state_is_the_last_snapshot_accepted():
    tracker = PumpEventTracker(PUMP)
    assert tracker.state is None
    last = snap(0, channel(STOPPED))
    tracker.on_snapshot(last)
    assert tracker.state is last and T0 == last.received_at


def test_a_restore_call_reports_the_restore_once_and_the_following_snapshot_does_not_repeat_it():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED)))
    tracker.on_comm_lost(at(20), "timeout")
    restored = tracker.on_comm_restored(at(40.5))
    assert [(e.kind, e.occurred_at, e.snapshot, e.detail) for e in restored] == [
        (EventKind.COMM_RESTORED, at(40.5), None, {"lost_at": at(20).isoformat(), "reason": "timeout"})
    ]
    assert tracker.on_comm_restored(at(41)) == []
    events = tracker.on_snapshot(snap(40, channel(INFUSING)))
    assert [(e.kind, e.occurred_at) for e in events] == [(EventKind.DELIVERY_START, at(40.5))]


def test_a_restore_call_without_a_loss_reports_nothing():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED)))
    assert tracker.on_comm_restored(at(10)) == []
