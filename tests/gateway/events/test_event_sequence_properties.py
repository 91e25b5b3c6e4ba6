"""Any sequence of snapshots and communication losses yields a well-formed event sequence.

The checker below keeps its own account of what the *events* said (which alerts are open,
which channels are delivering) and, after every step, compares it with what the *snapshot*
shows: every event needs a cause in the diff, and every change in the diff needs its event.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.model import Alarm, AlarmPriority, ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot
from gateway.events.model import EventKind, PumpEvent
from gateway.events.tracker import PumpEventTracker
from tests.gateway.events.snapshots import PUMP, at, ml, ml_h, snap

INTERVAL = timedelta(seconds=60)
JUMP = timedelta(seconds=60)
PROGRAM = ("rate", "dose_rate", "vtbi", "drug", "concentration")
ALARM_POOL = (
    Alarm("OCC", "occlusion", "Occlusion"),
    Alarm("OCC", "occlusion", "Occlusion", AlarmPriority.MEDIUM),  # same condition, priority changed
    Alarm("AIR", "air_in_line", "Air in line"),
    Alarm("BAT", "battery_low", "Battery low", AlarmPriority.LOW),
)
# Offsets are either within 10 s of each other or hours apart: a jump is unambiguous.
OFFSETS = (None, 0.0, 10.0, 3600.0, -7200.0)

channels_st = st.builds(
    ChannelSnapshot,
    channel_id=st.sampled_from("ABC"),
    state=st.sampled_from(list(ChannelState)),
    rate=st.sampled_from([None, ml_h(5), ml_h(10)]),
    vtbi=st.sampled_from([None, ml(0), ml(50), ml(100)]),
    volume_infused=st.sampled_from([None, ml(0), ml(50), ml(100)]),
    drug=st.sampled_from([None, "heparin", "insulin"]),
    alarms=st.lists(st.sampled_from(ALARM_POOL), max_size=3).map(tuple),
)
identity_st = st.builds(
    PumpIdentity,
    manufacturer=st.just("New Era"),
    model=st.just("NE-1000"),
    serial_number=st.sampled_from([None, "S1", "S1", "S1", "S2"]),
    firmware=st.sampled_from([None, "1.0", "1.0", "2.0"]),
    drug_library_version=st.sampled_from([None, "L1", "L1", "L2"]),
)


@st.composite
def histories(draw):
    """Steps ('snap', snapshot, true device offset), ('lost', at) and ('restored', at).

    received_at never decreases; a restore call comes just after the reply it announces.
    """
    steps, t = [], 0.0
    previous_channels: tuple[ChannelSnapshot, ...] = ()
    for _ in range(draw(st.integers(1, 25))):
        t += draw(st.floats(2, 150))
        if draw(st.integers(0, 7)) == 0:
            steps.append(("lost", at(t - draw(st.floats(0, 1))), None))
            continue
        # Mostly evolve the previous channels (same program, new state or rate) so that running
        # infusions persist, titrate, pass through UNKNOWN and stop; sometimes start afresh.
        how = draw(st.sampled_from(["keep", "evolve", "evolve", "fresh"])) if previous_channels else "fresh"
        if how == "keep":
            channels = previous_channels
        elif how == "evolve":
            channels = tuple(
                replace(
                    ch,
                    state=draw(st.sampled_from([ch.state, *ChannelState])),
                    rate=draw(st.sampled_from([ch.rate, ch.rate, ml_h(10)])),
                )
                for ch in previous_channels
            )
        else:
            channels = tuple(draw(st.lists(channels_st, max_size=3)))
        previous_channels = channels
        offset = draw(st.sampled_from(OFFSETS))
        latency = draw(st.floats(0, 2))
        shot = snap(t, *channels, identity=draw(identity_st), device_offset_s=offset, latency_s=latency)
        if draw(st.integers(0, 5)) == 0:  # the poller's optional restore call, just after the reply
            steps.append(("restored", shot.received_at + timedelta(seconds=draw(st.floats(0, 0.5))), None))
        steps.append(("snap", shot, offset))
    return steps


def first_channels(shot: PumpSnapshot) -> dict[str, ChannelSnapshot]:
    channels: dict[str, ChannelSnapshot] = {}
    for channel in shot.channels:
        channels.setdefault(channel.channel_id, channel)
    return channels


def has_program(channel: ChannelSnapshot | None) -> bool:
    return channel is not None and any(v is not None for v in (channel.rate, channel.vtbi, channel.drug))


@dataclass
class Account:
    """What the events so far have said, and the last known state they were derived from."""

    open_alerts: dict[tuple[str, str], str] = field(default_factory=dict)
    last_report: dict[str, tuple] = field(default_factory=dict)  # instance id -> (time, alarm)
    closed_ids: set[str] = field(default_factory=set)
    delivering: set[str] = field(default_factory=set)
    known: dict[str, ChannelSnapshot] = field(default_factory=dict)
    identity: PumpIdentity | None = None
    offset: float | None = None
    lost: bool = False
    last_time: object = None
    latest_input: object = None  # the latest gateway time handed in (reply, loss, restore)


def check_lost(acct: Account, when, events: list[PumpEvent]) -> None:
    if acct.lost:
        assert events == []
        return
    assert [e.kind for e in events] == [EventKind.COMM_LOST]
    assert events[0].snapshot is None
    # The loss time, unless an earlier reply (which may have yielded no event) was later.
    occurred = events[0].occurred_at
    assert occurred >= when and (acct.last_time is None or occurred >= acct.last_time)
    assert occurred == when or (acct.latest_input is not None and occurred <= acct.latest_input)
    acct.last_time = occurred
    acct.latest_input = max(when, acct.latest_input or when)
    acct.lost = True


def check_restored(acct: Account, when, events: list[PumpEvent]) -> None:
    if not acct.lost:
        assert events == []
        return
    assert [(e.kind, e.snapshot) for e in events] == [(EventKind.COMM_RESTORED, None)]
    occurred = events[0].occurred_at
    assert occurred == when or (acct.last_time is not None and occurred == acct.last_time > when)
    acct.last_time = occurred
    acct.latest_input = max(when, acct.latest_input or when)
    acct.lost = False


def check_snapshot(acct: Account, shot: PumpSnapshot, offset: float | None, events: list[PumpEvent]) -> None:
    queue = list(events)
    times = {e.occurred_at for e in events}
    assert len(times) <= 1, "all events of one snapshot share occurred_at"
    if events:
        when = events[0].occurred_at
        assert shot.received_at - timedelta(seconds=5) <= when
        assert acct.last_time is None or when >= acct.last_time
        assert when <= shot.received_at or when == acct.last_time  # clamped to a later restore call
        acct.last_time = when
    assert all(e.snapshot is shot and e.pump_id == PUMP for e in events)
    acct.latest_input = max(shot.received_at, acct.latest_input or shot.received_at)

    def take(kind: EventKind) -> PumpEvent | None:
        if queue and queue[0].kind is kind:
            return queue.pop(0)
        return None

    if acct.lost:
        assert take(EventKind.COMM_RESTORED) is not None
        acct.lost = False
    baseline = acct.identity is None
    if acct.identity is not None:
        changed = [
            name
            for name in ("serial_number", "firmware", "drug_library_version")
            if getattr(acct.identity, name) is not None
            and getattr(shot.identity, name) is not None
            and getattr(acct.identity, name) != getattr(shot.identity, name)
        ]
        event = take(EventKind.IDENTITY_CHANGED)
        assert (event is not None) == bool(changed)
        if event is not None:
            assert event.previous_identity == acct.identity and event.detail["changed"] == ",".join(changed)
        if "serial_number" in changed:  # device replaced: the old device's alerts and infusions close
            for _ in range(len(acct.open_alerts)):
                end = take(EventKind.ALARM_END)
                assert end is not None and end.detail == {"reason": "device_replaced"}
                assert acct.open_alerts.pop((end.channel_id, end.alarm.code)) == end.alert_instance_id
                acct.closed_ids.add(end.alert_instance_id)
            assert acct.open_alerts == {}
            for _ in range(len(acct.delivering)):
                stop = take(EventKind.DELIVERY_STOP)
                assert stop is not None and stop.detail.get("reason") == "device_replaced"
                assert stop.detail.get("ordinal", "").isdigit()  # where the channel sat in the tree
                acct.delivering.remove(stop.channel_id)
            acct.known.clear()
            acct.identity = None
            acct.offset = None
            baseline = True
    merged = {
        name: getattr(shot.identity, name)
        if getattr(shot.identity, name) is not None or acct.identity is None
        else getattr(acct.identity, name)
        for name in ("manufacturer", "model", "serial_number", "firmware", "drug_library_version")
    }
    acct.identity = PumpIdentity(**merged)

    jumped = take(EventKind.DEVICE_TIME_CHANGED)
    if offset is not None:
        expected = acct.offset is not None and abs(offset - acct.offset) > JUMP.total_seconds()
        assert (jumped is not None) == expected
        acct.offset = offset
    else:
        assert jumped is None

    channels = first_channels(shot)
    reported = {(cid, a.code): a for cid, ch in channels.items() for a in reversed(ch.alarms)}
    phase_rank = {EventKind.ALARM_ONSET: 0, EventKind.ALARM_CONTINUE: 1, EventKind.ALARM_END: 2}
    alarm_events = []
    while queue and queue[0].is_alarm:
        alarm_events.append(queue.pop(0))
    assert [phase_rank[e.kind] for e in alarm_events] == sorted(phase_rank[e.kind] for e in alarm_events)
    before = dict(acct.open_alerts)
    for event in alarm_events:
        key = (event.channel_id, event.alarm.code)
        iid = event.alert_instance_id
        if event.kind is EventKind.ALARM_ONSET:
            assert key not in acct.open_alerts, "no duplicate onset for an active condition"
            assert iid not in acct.closed_ids and iid not in acct.open_alerts.values()
            assert key in reported and event.detail.get("baseline") == ("true" if baseline else None)
            acct.open_alerts[key] = iid
            acct.last_report[iid] = (event.occurred_at, event.alarm)
        elif event.kind is EventKind.ALARM_CONTINUE:
            assert acct.open_alerts.get(key) == iid and key in reported
            last_time, last_alarm = acct.last_report[iid]
            due = event.occurred_at - last_time >= INTERVAL
            assert due or (event.detail.get("changed") and event.alarm != last_alarm)
            acct.last_report[iid] = (event.occurred_at, event.alarm)
        else:
            assert acct.open_alerts.get(key) == iid, "every end has an earlier onset with the same id"
            assert key not in reported
            assert event.detail == ({} if event.channel_id in channels else {"reason": "channel_removed"})
            del acct.open_alerts[key]
            del acct.last_report[iid]
            acct.closed_ids.add(iid)
    assert set(acct.open_alerts) == set(reported), "the open alerts are exactly the alarms shown"
    continued = {e.alert_instance_id for e in alarm_events if e.kind is EventKind.ALARM_CONTINUE}
    for key, iid in before.items():
        if key in reported and iid not in continued:
            last_time, last_alarm = acct.last_report[iid]
            assert reported[key] == last_alarm, "a changed condition is reported at once"
            assert shot.received_at - timedelta(seconds=5) - last_time < INTERVAL, "a due continue is not skipped"

    # Delivery events: per channel in snapshot order, then removed channels.
    for cid, ch in channels.items():
        previous = acct.known.get(cid)
        mine = []
        while queue and queue[0].channel_id == cid and not queue[0].is_alarm:
            mine.append(queue.pop(0))
        if ch.state is ChannelState.UNKNOWN:
            assert mine == []
            continue
        was = cid in acct.delivering
        now = ch.state is ChannelState.INFUSING
        kinds = [e.kind for e in mine]
        assert all(e.previous_channel is previous for e in mine)
        if was and now:
            changed = [n for n in PROGRAM if getattr(previous, n) != getattr(ch, n)]
            assert kinds == ([EventKind.DELIVERY_STOP, EventKind.DELIVERY_START] if changed else [])
            if changed:
                assert mine[0].detail["reason"] == "transitioning" and mine[0].occurred_at == mine[1].occurred_at
        elif now:
            assert kinds == [EventKind.DELIVERY_START]
            assert mine[0].detail == ({"baseline": "true"} if baseline else {})
        else:
            expected = []
            if was:
                vtbi = ch.vtbi if ch.vtbi is not None else previous.vtbi
                done = ch.state is ChannelState.KVO or (
                    vtbi is not None
                    and vtbi.value > 0
                    and ch.volume_infused is not None
                    and ch.volume_infused.value >= vtbi.value
                )
                expected.append(EventKind.DELIVERY_COMPLETE if done else EventKind.DELIVERY_STOP)
            if has_program(previous) and not has_program(ch):
                expected.append(EventKind.PROGRAM_CLEARED)
            assert kinds == expected
        if now:
            acct.delivering.add(cid)
        else:
            acct.delivering.discard(cid)
        acct.known[cid] = ch
    for cid in [c for c in acct.known if c not in channels]:
        previous = acct.known.pop(cid)
        if cid in acct.delivering:
            stop = queue.pop(0)
            expected_stop = (EventKind.DELIVERY_STOP, cid, "channel_removed")
            assert (stop.kind, stop.channel_id, stop.detail.get("reason")) == expected_stop
            assert stop.detail.get("ordinal", "").isdigit()
            acct.delivering.remove(cid)
    assert queue == [], f"events without a cause: {queue}"
    assert acct.delivering <= set(channels)


@settings(max_examples=400, deadline=None)
@given(histories())
def test_any_history_of_snapshots_and_losses_yields_a_well_formed_event_sequence(steps):
    ids = iter(range(10**6))
    tracker = PumpEventTracker(PUMP, instance_ids=lambda: f"i{next(ids)}", alarm_continue_interval=INTERVAL)
    acct = Account()
    for kind, payload, offset in steps:
        if kind == "lost":
            check_lost(acct, payload, tracker.on_comm_lost(payload, "timeout"))
        elif kind == "restored":
            check_restored(acct, payload, tracker.on_comm_restored(payload))
        else:
            check_snapshot(acct, payload, offset, tracker.on_snapshot(payload))
            assert tracker.state is payload
        assert tracker.active_alarms == acct.open_alerts  # memory bounded by what the pump shows
        shown = sum(len(c.alarms) for c in (tracker.state.channels if tracker.state else ()))
        assert len(tracker.active_alarms) <= shown


@settings(max_examples=200, deadline=None)
@given(histories())
def test_default_instance_ids_never_repeat_within_a_history(steps):
    tracker = PumpEventTracker(PUMP)
    onset_ids = [
        e.alert_instance_id
        for kind, payload, _ in steps
        for e in (tracker.on_snapshot(payload) if kind == "snap" else tracker.on_comm_lost(payload, "t"))
        if e.kind is EventKind.ALARM_ONSET
    ]
    assert len(onset_ids) == len(set(onset_ids))
