"""Typed events: what changed at a pump, and when it happened there.

Events are derived by diffing successive :class:`~drivers.model.PumpSnapshot` objects and are
the input of the PCD-10 (infusion events) and PCD-04 (alarms) encoders and of MQTT. A
titration is two events (delivery stop, then delivery start), as IHE IPEC models it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from drivers.model import Alarm, ChannelSnapshot, PumpIdentity, PumpSnapshot


class EventKind(enum.StrEnum):
    DELIVERY_START = "delivery_start"
    DELIVERY_STOP = "delivery_stop"
    DELIVERY_COMPLETE = "delivery_complete"
    PROGRAM_CLEARED = "program_cleared"
    COMM_LOST = "comm_lost"
    COMM_RESTORED = "comm_restored"
    DEVICE_TIME_CHANGED = "device_time_changed"
    IDENTITY_CHANGED = "identity_changed"
    ALARM_ONSET = "alarm_onset"
    ALARM_CONTINUE = "alarm_continue"
    ALARM_END = "alarm_end"
    # Traceability (gateway/identity): derived from the durable identity registry, not the tracker.
    DEVICE_SWAPPED = "device_swapped"
    FIRMWARE_CHANGED = "firmware_changed"
    PUMP_LIBRARY_CHANGED = "pump_library_changed"
    DEVICE_RETURNED = "device_returned"
    IDENTITY_UNREADABLE = "identity_unreadable"


ALARM_KINDS = frozenset({EventKind.ALARM_ONSET, EventKind.ALARM_CONTINUE, EventKind.ALARM_END})
TRACE_KINDS = frozenset(
    {
        EventKind.DEVICE_SWAPPED,
        EventKind.FIRMWARE_CHANGED,
        EventKind.PUMP_LIBRARY_CHANGED,
        EventKind.DEVICE_RETURNED,
        EventKind.IDENTITY_UNREADABLE,
    }
)


@dataclass(frozen=True, slots=True)
class PumpEvent:
    """One event at one pump.

    ``occurred_at`` is when it happened at the pump (device clock corrected to the gateway's
    clock), never when it is sent. ``snapshot`` is the pump state that revealed the event
    (``None`` for a communication loss, where there is no new state). For alarms,
    ``alert_instance_id`` is stable from onset to end and ``alarm`` is the condition.
    ``previous_channel`` is the channel's last known state before a delivery event (the old
    rate of a titration's stop, the program that was cleared, a removed channel's last state).
    """

    kind: EventKind
    pump_id: str
    occurred_at: datetime
    channel_id: str | None = None
    snapshot: PumpSnapshot | None = None
    alarm: Alarm | None = None
    alert_instance_id: str | None = None
    previous_identity: PumpIdentity | None = None
    detail: dict[str, str] = field(default_factory=dict)
    previous_channel: ChannelSnapshot | None = None

    @property
    def is_alarm(self) -> bool:
        return self.kind in ALARM_KINDS
