"""One pump's event deriver: successive snapshots in, typed events out. Pure, no I/O.

The poller owns one :class:`PumpEventTracker` per pump and hands it every snapshot and every
communication loss; the returned events go to the router in list order.

Rules (each a decision, with its reason here or in clock.py, diff.py and alarms.py):

* **Time.** Every event of one snapshot shares one ``occurred_at``: the moment the pump
  produced the reply, on the gateway clock (:mod:`gateway.events.clock`), then clamped so that
  a pump's event times never decrease. A communication loss happens at the ``at`` the poller
  gives (its own gateway-clock judgement), clamped the same way.
* **Start-up.** The first snapshot of a pump the tracker knows nothing about is a
  *baseline*: channels already infusing produce a delivery start and active alarms an onset,
  flagged ``detail["baseline"] == "true"``. The EHR must learn what is running and the alert
  manager what is sounding. A restarted gateway restores the tracker instead (see
  "Restart"), so the baseline is only for a first start, an unreadable state, or a new device.
* **Communication.** Lost is reported once by :meth:`on_comm_lost`. Restored is reported once,
  by :meth:`on_comm_restored` when the poller calls it on the first valid reply, otherwise by
  the next snapshot itself (a reconnected link that yields no valid reply has not restored
  anything). Nothing is ended or stopped on loss: alarms stay active and delivery stays as
  last seen until a snapshot shows otherwise.
* **Identity** (:mod:`gateway.events.identity`): only a change between two known values is an
  identity change. A new serial number is a different device on the same link: the old
  device's alarms end and its infusions stop with reason ``device_replaced``, and the new
  device is a baseline.
* **Unknown state.** A channel whose state could not be decoded keeps its last known delivery
  state (no start/stop guessed); its alarms are taken as reported, so a driver that could not
  read the alarms must fail the poll rather than report none.
* **Channels.** A channel missing from a snapshot was removed: its infusion stops and its
  alarms end with reason ``channel_removed``, never silently.
* **Order within one snapshot.** comm restored, identity changed, closures of a replaced
  device, device time changed, alarm onsets, alarm continues, alarm ends, then delivery events
  per channel in the snapshot's channel order (removed channels last).
* **Restart.** :meth:`export_state` / :meth:`restore_state` carry what the tracker knows and
  the outside world was told (identity, delivery state per channel, active alarms with their
  instance ids, communication loss) across a restart; a restored tracker is not a baseline,
  so running infusions are not started again and active alarms keep their onset
  (:mod:`gateway.events.state_codec`).
* **Latched alarms** (``Alarm.latched``) stay active while absent until the channel delivers
  again (:mod:`gateway.events.alarms`).
* **Bounded memory.** The last snapshot, the last known state of each current channel, the
  active alarms of current channels and a fixed-size clock window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from drivers.model import ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot
from gateway.events.alarms import DEFAULT_CONTINUE_INTERVAL, AlarmBook, AlarmChange, uuid4_hex
from gateway.events.clock import DEFAULT_JUMP_THRESHOLD, DEFAULT_LATENCY_TOLERANCE, DeviceClock
from gateway.events.diff import (
    REASON_CHANNEL_REMOVED,
    REASON_DEVICE_REPLACED,
    closing_delivery,
    diff_delivery,
)
from gateway.events.errors import ForeignSnapshotError, NaiveTimestampError
from gateway.events.identity import identity_changes, merge_identity
from gateway.events.model import EventKind, PumpEvent
from gateway.events.state_codec import TrackerState

_ALARM_ORDER = {EventKind.ALARM_ONSET: 0, EventKind.ALARM_CONTINUE: 1, EventKind.ALARM_END: 2}


class PumpEventTracker:
    """Derives the events of one pump from its successive snapshots."""

    def __init__(
        self,
        pump_id: str,
        *,
        instance_ids: Callable[[], str] | None = None,
        alarm_continue_interval: timedelta | None = DEFAULT_CONTINUE_INTERVAL,
        device_time_jump: timedelta = DEFAULT_JUMP_THRESHOLD,
        latency_tolerance: timedelta = DEFAULT_LATENCY_TOLERANCE,
    ) -> None:
        self.pump_id = pump_id
        self._clock_settings = {"jump_threshold": device_time_jump, "latency_tolerance": latency_tolerance}
        self._clock = DeviceClock(**self._clock_settings)
        self._alarms = AlarmBook(instance_ids or uuid4_hex, alarm_continue_interval)
        self._last: PumpSnapshot | None = None
        self._identity: PumpIdentity | None = None
        self._known: dict[str, ChannelSnapshot] = {}  # last non-UNKNOWN state per current channel
        self._ordinals: dict[str, int] = {}  # channel id -> its 1-based position when last seen
        self._last_time: datetime | None = None
        self._lost: tuple[datetime, str] | None = None

    @property
    def state(self) -> PumpSnapshot | None:
        """The last snapshot accepted, as the driver reported it."""
        return self._last

    @property
    def identity(self) -> PumpIdentity | None:
        """The identity as known: the last reported one, unreported fields kept from before."""
        return self._identity

    @property
    def comm_lost(self) -> bool:
        return self._lost is not None

    @property
    def active_alarms(self) -> Mapping[tuple[str, str], str]:
        """``(channel_id, alarm code) -> alert_instance_id`` of every alarm not yet ended."""
        return {key: active.instance_id for key, active in self._alarms.active.items()}

    def export_state(self) -> TrackerState:
        """What a restarted tracker needs to continue the story (module docstring, "Restart")."""
        return TrackerState(
            identity=self._identity,
            known=dict(self._known),
            alarms=self._alarms.export(),
            lost=self._lost,
            last_time=self._last_time,
        )

    def restore_state(self, state: TrackerState) -> None:
        """Continue from an exported state (before the first snapshot of this process)."""
        self._identity = state.identity
        self._known = dict(state.known)
        self._alarms.restore(state.alarms)
        self._lost = state.lost
        self._last_time = state.last_time

    def on_comm_lost(self, at: datetime, reason: str) -> list[PumpEvent]:
        """The poller gave up on the pump at ``at`` (gateway clock); reported once per loss.

        Also before any snapshot: a pump that never answered since start-up is worth knowing.
        """
        self._require_aware("at", at)
        if self._lost is not None:
            return []
        at = self._advance(at)
        self._lost = (at, reason)
        return [PumpEvent(EventKind.COMM_LOST, self.pump_id, at, detail={"reason": reason})]

    def on_comm_restored(self, at: datetime) -> list[PumpEvent]:
        """A valid reply arrived at ``at`` after a loss; the snapshot that follows needs no restore.

        Optional: without it the next snapshot reports the restore at its own time. Either way
        there is exactly one restore per loss, and none without a loss.
        """
        self._require_aware("at", at)
        if self._lost is None:
            return []
        at = self._advance(at)
        lost_at, reason = self._lost
        self._lost = None
        detail = {"lost_at": lost_at.isoformat(), "reason": reason}
        return [PumpEvent(EventKind.COMM_RESTORED, self.pump_id, at, detail=detail)]

    def on_snapshot(self, snapshot: PumpSnapshot) -> list[PumpEvent]:
        if snapshot.pump_id != self.pump_id:
            raise ForeignSnapshotError(self.pump_id, snapshot.pump_id)
        self._require_aware("received_at", snapshot.received_at)
        events: list[PumpEvent] = []
        pending: list[tuple[EventKind, dict[str, str], PumpIdentity | None]] = []
        if self._lost is not None:
            lost_at, reason = self._lost
            pending.append((EventKind.COMM_RESTORED, {"lost_at": lost_at.isoformat(), "reason": reason}, None))
            self._lost = None
        baseline = self._identity is None
        replaced = False
        old_identity = self._identity
        if self._identity is not None:
            changed = identity_changes(self._identity, snapshot.identity)
            if changed:
                pending.append((EventKind.IDENTITY_CHANGED, {"changed": ",".join(changed)}, self._identity))
            # A different serial on the same link is a different device (ihe-pcd.md §4: the
            # instance id in OBX-18): the old one's infusions and alarms can no longer be seen.
            replaced = "serial_number" in changed
        if replaced:
            self._identity = snapshot.identity
            self._clock = DeviceClock(**self._clock_settings)
            baseline = True
        elif self._identity is None:
            self._identity = snapshot.identity
        else:
            self._identity = merge_identity(self._identity, snapshot.identity)
        reading = self._clock.read(snapshot.received_at, snapshot.device_time)
        at = self._advance(reading.event_time)
        for kind, detail, previous_identity in pending:
            events.append(self._event(kind, at, snapshot, detail=detail, previous_identity=previous_identity))
        if replaced:
            events.extend(self._close_everything(at, snapshot, old_identity))
        if reading.jumped:
            assert reading.previous_offset is not None and reading.observed_offset is not None
            detail = {
                "previous_offset_s": _seconds(reading.previous_offset),
                "offset_s": _seconds(reading.observed_offset),
                "change_s": _seconds(reading.observed_offset - reading.previous_offset),
            }
            events.append(self._event(EventKind.DEVICE_TIME_CHANGED, at, snapshot, detail=detail))

        channels: dict[str, ChannelSnapshot] = {}
        for channel in snapshot.channels:
            channels.setdefault(channel.channel_id, channel)  # a repeated id: the first one counts

        alarm_changes: list[AlarmChange] = []
        for channel_id, channel in channels.items():
            delivering = channel.state in (ChannelState.INFUSING, ChannelState.KVO)
            alarm_changes.extend(
                self._alarms.update(channel_id, channel.alarms, at, baseline=baseline, delivering=delivering)
            )
        for channel_id in sorted(self._alarms.channels() - channels.keys()):
            alarm_changes.extend(self._alarms.end_channel(channel_id, REASON_CHANNEL_REMOVED))
        alarm_changes.sort(key=lambda change: _ALARM_ORDER[change.kind])
        events.extend(change.event(self.pump_id, at, snapshot) for change in alarm_changes)

        for channel_id, channel in channels.items():
            previous = self._known.get(channel_id)
            if channel.state is ChannelState.UNKNOWN:
                continue  # delivery unknown this poll: keep the last known state
            changes = diff_delivery(previous, channel, baseline=baseline)
            events.extend(change.event(self.pump_id, at, snapshot, channel_id, previous) for change in changes)
            self._known[channel_id] = channel
        for channel_id in [cid for cid in self._known if cid not in channels]:
            ordinal = self._ordinal(channel_id)
            previous = self._known.pop(channel_id)
            changes = [
                replace(c, detail={**c.detail, "ordinal": ordinal})
                for c in closing_delivery(previous, REASON_CHANNEL_REMOVED)
            ]
            events.extend(change.event(self.pump_id, at, snapshot, channel_id, previous) for change in changes)

        self._ordinals = {}
        for n, channel in enumerate(snapshot.channels, start=1):
            self._ordinals.setdefault(channel.channel_id, n)
        self._last = snapshot
        return events

    def _ordinal(self, channel_id: str) -> str:
        """Where a channel that is gone sat in the pump tree (its VMD ordinal stays reserved,
        TF2-R10 App. A), so its closing stop names the same source as its start."""
        if channel_id in self._ordinals:
            return str(self._ordinals[channel_id])
        return str(list(self._known).index(channel_id) + 1) if channel_id in self._known else "0"

    def _close_everything(
        self, at: datetime, snapshot: PumpSnapshot, old_identity: PumpIdentity | None
    ) -> list[PumpEvent]:
        """The previous device was replaced: end its alarms and stop its infusions, saying why.

        The closing events carry the old device's identity (``previous_identity``): they are
        about it, not about the device that took its place."""
        events = []
        for channel_id in sorted(self._alarms.channels()):
            for alarm_change in self._alarms.end_channel(channel_id, REASON_DEVICE_REPLACED):
                events.append(replace(alarm_change.event(self.pump_id, at, snapshot), previous_identity=old_identity))
        for channel_id, previous in self._known.items():
            ordinal = self._ordinal(channel_id)
            for stop in closing_delivery(previous, REASON_DEVICE_REPLACED):
                stop = replace(stop, detail={**stop.detail, "ordinal": ordinal})
                event = stop.event(self.pump_id, at, snapshot, channel_id, previous)
                events.append(replace(event, previous_identity=old_identity))
        self._known.clear()
        return events

    def _advance(self, candidate: datetime) -> datetime:
        """Event times of one pump never go backwards, even if the gateway clock is stepped."""
        if self._last_time is not None and candidate < self._last_time:
            candidate = self._last_time
        self._last_time = candidate
        return candidate

    def _require_aware(self, field_name: str, value: datetime) -> None:
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveTimestampError(self.pump_id, field_name, value)

    def _event(
        self,
        kind: EventKind,
        at: datetime,
        snapshot: PumpSnapshot,
        *,
        detail: dict[str, str],
        previous_identity: PumpIdentity | None = None,
    ) -> PumpEvent:
        return PumpEvent(kind, self.pump_id, at, snapshot=snapshot, detail=detail, previous_identity=previous_identity)


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():.3f}"
