"""Delivery start / stop / complete, titration and program cleared (IPEC, ihe-pcd.md §8.3-§8.4)."""

from __future__ import annotations

from drivers.model import ChannelState
from gateway.events.model import EventKind
from gateway.events.tracker import PumpEventTracker
from tests.gateway.events.snapshots import OCCLUSION, PUMP, at, channel, ml_h, snap

INFUSING, STOPPED, PAUSED, KVO, IDLE, ALARM, UNKNOWN = (
    ChannelState.INFUSING,
    ChannelState.STOPPED,
    ChannelState.PAUSED,
    ChannelState.KVO,
    ChannelState.IDLE,
    ChannelState.ALARM,
    ChannelState.UNKNOWN,
)


def kinds(events):
    return [e.kind for e in events]


def started(tracker: PumpEventTracker, rate: str = "10") -> None:
    tracker.on_snapshot(snap(0, channel(STOPPED, rate=rate)))
    tracker.on_snapshot(snap(10, channel(INFUSING, rate=rate)))


def test_first_snapshot_with_an_infusing_channel_is_a_start_flagged_baseline():
    tracker = PumpEventTracker(PUMP)
    events = tracker.on_snapshot(snap(0, channel(INFUSING)))
    assert kinds(events) == [EventKind.DELIVERY_START]
    assert events[0].detail == {"baseline": "true"}
    assert events[0].channel_id == "A" and events[0].previous_channel is None


def test_first_snapshot_of_a_stopped_pump_yields_no_event():
    assert PumpEventTracker(PUMP).on_snapshot(snap(0, channel(STOPPED))) == []


def test_stopped_to_infusing_is_a_delivery_start_at_the_reply_time():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED)))
    shown = snap(10, channel(INFUSING))
    events = tracker.on_snapshot(shown)
    assert kinds(events) == [EventKind.DELIVERY_START]
    assert events[0].detail == {}
    assert events[0].occurred_at == at(10)
    assert events[0].snapshot is shown
    assert events[0].previous_channel.state is STOPPED


def test_an_unchanged_running_infusion_yields_no_event():
    tracker = PumpEventTracker(PUMP)
    started(tracker)
    assert tracker.on_snapshot(snap(20, channel(INFUSING, infused="3"))) == []


def test_pause_is_a_delivery_stop_carrying_the_program_that_stopped():
    tracker = PumpEventTracker(PUMP)
    started(tracker, rate="25")
    events = tracker.on_snapshot(snap(20, channel(PAUSED, rate="25", infused="2")))
    assert kinds(events) == [EventKind.DELIVERY_STOP]
    assert events[0].detail == {"to_state": "paused", "reason": "not_specified"}
    assert events[0].previous_channel.rate == ml_h("25")


def test_an_alarm_that_stops_the_pump_is_a_stop_with_reason_alarming():
    tracker = PumpEventTracker(PUMP)
    started(tracker)
    events = tracker.on_snapshot(snap(20, channel(ALARM, alarms=(OCCLUSION,))))
    delivery = [e for e in events if not e.is_alarm]
    assert kinds(delivery) == [EventKind.DELIVERY_STOP]
    assert delivery[0].detail["reason"] == "alarming"


def test_rate_change_while_infusing_is_a_titration_stop_then_start():
    tracker = PumpEventTracker(PUMP)
    started(tracker, rate="10")
    events = tracker.on_snapshot(snap(20, channel(INFUSING, rate="15")))
    assert kinds(events) == [EventKind.DELIVERY_STOP, EventKind.DELIVERY_START]
    stop, start = events
    assert stop.occurred_at == start.occurred_at == at(20)
    assert stop.detail == {"transition": "titration", "changed": "rate", "reason": "transitioning"}
    assert start.detail == {"transition": "titration", "changed": "rate"}
    assert stop.previous_channel.rate == ml_h("10")
    assert start.snapshot.channels[0].rate == ml_h("15")


def test_vtbi_change_while_infusing_is_a_program_change_stop_then_start():
    tracker = PumpEventTracker(PUMP)
    started(tracker)
    events = tracker.on_snapshot(snap(20, channel(INFUSING, vtbi="250")))
    assert kinds(events) == [EventKind.DELIVERY_STOP, EventKind.DELIVERY_START]
    assert events[0].detail["transition"] == "program_change"
    assert events[0].detail["changed"] == "vtbi"


def test_switching_from_basic_to_library_infusion_is_a_stop_then_start():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED, drug=None)))
    tracker.on_snapshot(snap(10, channel(INFUSING, drug=None)))
    events = tracker.on_snapshot(snap(20, channel(INFUSING, drug="heparin")))
    assert kinds(events) == [EventKind.DELIVERY_STOP, EventKind.DELIVERY_START]
    assert events[1].detail["changed"] == "drug"


def test_infusing_to_kvo_is_delivery_complete():
    tracker = PumpEventTracker(PUMP)
    started(tracker)
    events = tracker.on_snapshot(snap(20, channel(KVO, rate="1", infused="100")))
    assert kinds(events) == [EventKind.DELIVERY_COMPLETE]
    assert events[0].detail == {"to_state": "kvo", "by": "kvo"}


def test_infusing_to_stopped_with_vtbi_reached_is_delivery_complete():
    tracker = PumpEventTracker(PUMP)
    started(tracker)
    events = tracker.on_snapshot(snap(20, channel(STOPPED, infused="100.0")))
    assert kinds(events) == [EventKind.DELIVERY_COMPLETE]
    assert events[0].detail == {"to_state": "stopped", "by": "volume"}


def test_infusing_to_stopped_short_of_vtbi_is_a_stop():
    tracker = PumpEventTracker(PUMP)
    started(tracker)
    assert kinds(tracker.on_snapshot(snap(20, channel(STOPPED, infused="99.9")))) == [EventKind.DELIVERY_STOP]


def test_a_vtbi_of_zero_never_makes_a_stop_a_completion():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED, vtbi="0")))
    tracker.on_snapshot(snap(10, channel(INFUSING, vtbi="0")))
    events = tracker.on_snapshot(snap(20, channel(STOPPED, vtbi="0", infused="5")))
    assert kinds(events) == [EventKind.DELIVERY_STOP]


def test_kvo_to_infusing_is_a_new_start_and_kvo_to_stopped_is_no_event():
    tracker = PumpEventTracker(PUMP)
    started(tracker)
    tracker.on_snapshot(snap(20, channel(KVO, infused="100")))
    assert tracker.on_snapshot(snap(30, channel(STOPPED, infused="100"))) == []
    tracker.on_snapshot(snap(40, channel(KVO, infused="100")))
    events = tracker.on_snapshot(snap(50, channel(INFUSING, vtbi="50", infused="0")))
    assert kinds(events) == [EventKind.DELIVERY_START]


def test_program_cleared_while_stopped_is_program_cleared_with_the_old_program():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED)))
    events = tracker.on_snapshot(snap(10, channel(IDLE, rate=None, vtbi=None, drug=None, infused=None)))
    assert kinds(events) == [EventKind.PROGRAM_CLEARED]
    assert events[0].previous_channel.drug == "heparin"


def test_a_program_that_keeps_one_setting_is_not_cleared():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED)))
    assert tracker.on_snapshot(snap(10, channel(STOPPED, vtbi=None, drug=None))) == []


def test_stop_and_clear_seen_in_one_poll_are_a_stop_then_program_cleared():
    tracker = PumpEventTracker(PUMP)
    started(tracker)
    events = tracker.on_snapshot(snap(20, channel(IDLE, rate=None, vtbi=None, drug=None)))
    assert kinds(events) == [EventKind.DELIVERY_STOP, EventKind.PROGRAM_CLEARED]


def test_unknown_state_keeps_the_last_known_delivery_state():
    tracker = PumpEventTracker(PUMP)
    started(tracker)
    assert tracker.on_snapshot(snap(20, channel(UNKNOWN, rate=None))) == []
    assert tracker.on_snapshot(snap(30, channel(INFUSING))) == []
    tracker.on_snapshot(snap(40, channel(UNKNOWN)))
    events = tracker.on_snapshot(snap(50, channel(STOPPED)))
    assert kinds(events) == [EventKind.DELIVERY_STOP]
    assert events[0].previous_channel.state is INFUSING


def test_removed_channel_while_infusing_is_a_stop_with_reason_channel_removed():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(INFUSING, channel_id="A"), channel(STOPPED, channel_id="B")))
    events = tracker.on_snapshot(snap(10, channel(STOPPED, channel_id="B")))
    assert kinds(events) == [EventKind.DELIVERY_STOP]
    assert (events[0].channel_id, events[0].detail) == ("A", {"reason": "channel_removed", "ordinal": "1"})
    assert events[0].previous_channel.channel_id == "A"


def test_a_channel_added_already_infusing_is_a_start_not_flagged_baseline():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(STOPPED, channel_id="A")))
    events = tracker.on_snapshot(snap(10, channel(STOPPED, channel_id="A"), channel(INFUSING, channel_id="B")))
    assert [(e.kind, e.channel_id, e.detail) for e in events] == [(EventKind.DELIVERY_START, "B", {})]


def test_channels_are_diffed_independently_in_snapshot_order():
    tracker = PumpEventTracker(PUMP)
    tracker.on_snapshot(snap(0, channel(INFUSING, channel_id="A"), channel(STOPPED, channel_id="B")))
    events = tracker.on_snapshot(snap(10, channel(PAUSED, channel_id="A"), channel(INFUSING, channel_id="B")))
    assert [(e.kind, e.channel_id) for e in events] == [
        (EventKind.DELIVERY_STOP, "A"),
        (EventKind.DELIVERY_START, "B"),
    ]
