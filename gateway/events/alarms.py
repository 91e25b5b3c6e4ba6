"""Alarm phases per (channel, alarm code): onset, continue, end (ihe-pcd.md §7).

Each condition gets an alert instance identifier at onset that every later message of the same
alert carries (PCD-04 OBR-3 of the onset / OBR-29 of the follow-ups, ihe-pcd.md §7.2); it must
never repeat, also across gateway restarts, hence uuid4 by default. The PCD-04 trigger is the
"presence, onset, continuation or end of an alert" (§3.4.4.1.3, ihe-pcd.md §7.1): the TF
names a ``continue`` phase but, in the digest, prescribes no period, so the period is ours
(default 60 s, configurable; ``None`` disables it). A continue is also sent at once when the
pump changes the condition's priority, kind or text, so an escalation is never held back.

An alarm ends only when the pump is seen without it, or when the pump can no longer be
observed *as that device* (channel removed, device replaced) - then the end says why. A
communication loss ends nothing: the alarm may still be sounding, and silently closing it would
tell the alert manager it is over (design.md §2, "never drop an alarm silently").

A *latched* alarm (``Alarm.latched``: the protocol reports it once, reading acknowledges it)
is not ended by its absence: it stays active until the channel delivers again, the pump's
first observable sign that the condition was resolved.

The book can be exported and restored (``export``/``restore``): the active alarms with their
instance id, onset time and last phase sent are part of the pump's durable clinical state, so a
restart continues an alarm under its original onset (design.md §2 inv. 9).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from drivers.model import Alarm, PumpSnapshot
from gateway.events.model import EventKind, PumpEvent

DEFAULT_CONTINUE_INTERVAL = timedelta(seconds=60)

AlarmKey = tuple[str, str]  # (channel_id, alarm code)


def uuid4_hex() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class ActiveAlarm:
    instance_id: str
    alarm: Alarm
    onset_at: datetime
    reported_at: datetime
    phase: str = "start"  # last phase told to the outside world: start | continue


@dataclass(frozen=True, slots=True)
class AlarmChange:
    kind: EventKind
    channel_id: str
    alarm: Alarm
    instance_id: str
    detail: dict[str, str] = field(default_factory=dict)

    def event(self, pump_id: str, at: datetime, snapshot: PumpSnapshot) -> PumpEvent:
        return PumpEvent(
            self.kind,
            pump_id,
            at,
            channel_id=self.channel_id,
            snapshot=snapshot,
            alarm=self.alarm,
            alert_instance_id=self.instance_id,
            detail=self.detail,
        )


class AlarmBook:
    """The active alarms of one pump; memory is bounded by the alarms the pump reports."""

    def __init__(self, new_id: Callable[[], str], continue_interval: timedelta | None) -> None:
        self._new_id = new_id
        self._interval = continue_interval
        self._active: dict[AlarmKey, ActiveAlarm] = {}

    @property
    def active(self) -> Mapping[AlarmKey, ActiveAlarm]:
        return MappingProxyType(self._active)

    def channels(self) -> set[str]:
        return {channel_id for channel_id, _ in self._active}

    def update(
        self, channel_id: str, alarms: Iterable[Alarm], at: datetime, *, baseline: bool, delivering: bool = False
    ) -> list[AlarmChange]:
        """Diff one channel's reported alarms against the active ones (first of a repeated code wins).

        ``delivering``: the channel is seen delivering now, which resolves its latched alarms.
        """
        reported: dict[str, Alarm] = {}
        for alarm in alarms:
            reported.setdefault(alarm.code, alarm)
        changes: list[AlarmChange] = []
        for code, alarm in reported.items():
            key = (channel_id, code)
            active = self._active.get(key)
            if active is None:
                instance_id = self._new_id()
                self._active[key] = ActiveAlarm(instance_id, alarm, onset_at=at, reported_at=at)
                detail = {"baseline": "true"} if baseline else {}
                changes.append(AlarmChange(EventKind.ALARM_ONSET, channel_id, alarm, instance_id, detail))
                continue
            changed = [
                name for name in ("priority", "kind", "text") if getattr(alarm, name) != getattr(active.alarm, name)
            ]
            changes.extend(self._continue(channel_id, active, alarm, at, changed))
        gone = []
        for key, active in self._active.items():
            if key[0] != channel_id or key[1] in reported:
                continue
            if active.alarm.latched and not delivering:
                changes.extend(self._continue(channel_id, active, active.alarm, at, []))  # still latched
            else:
                gone.append(key)
        changes.extend(self._end(gone, {}))
        return changes

    def _continue(
        self, channel_id: str, active: ActiveAlarm, alarm: Alarm, at: datetime, changed: list[str]
    ) -> list[AlarmChange]:
        due = self._interval is not None and at - active.reported_at >= self._interval
        if not (changed or due):
            return []
        active.alarm = alarm
        active.reported_at = at
        active.phase = "continue"
        detail = {"changed": ",".join(changed)} if changed else {}
        return [AlarmChange(EventKind.ALARM_CONTINUE, channel_id, alarm, active.instance_id, detail)]

    def export(self) -> list[tuple[AlarmKey, ActiveAlarm]]:
        return list(self._active.items())

    def restore(self, entries: Iterable[tuple[AlarmKey, ActiveAlarm]]) -> None:
        self._active = dict(entries)

    def end_channel(self, channel_id: str, reason: str) -> list[AlarmChange]:
        """End every alarm of a channel that can no longer be observed, saying why."""
        return self._end([key for key in self._active if key[0] == channel_id], {"reason": reason})

    def _end(self, keys: list[AlarmKey], detail: dict[str, str]) -> list[AlarmChange]:
        changes = []
        for key in keys:
            active = self._active.pop(key)
            end = AlarmChange(EventKind.ALARM_END, key[0], active.alarm, active.instance_id, dict(detail))
            changes.append(end)
        return changes
