"""Normalized pump data: what every driver returns, whatever the protocol.

Every quantity carries an explicit unit (UCUM spelling) so that nothing downstream guesses
whether a rate is mL/h or mL/min. Values are ``Decimal`` because the drug-library dose math
and the HL7 encoders must reproduce what the pump displayed, digit for digit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Quantity:
    """A number with its unit, e.g. ``Quantity(Decimal("15.4"), "mL/h")``."""

    value: Decimal
    unit: str

    def __str__(self) -> str:
        return f"{self.value} {self.unit}"


class ChannelState(enum.StrEnum):
    """Delivery state of one channel, mapped from each protocol's own status codes."""

    INFUSING = "infusing"
    KVO = "kvo"  # keep vein open after completion
    PAUSED = "paused"
    STOPPED = "stopped"  # program present, not delivering
    IDLE = "idle"  # no program
    ALARM = "alarm"  # stopped by an alarm
    UNKNOWN = "unknown"


class AlarmPriority(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    ADVISORY = "advisory"


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm condition as the pump reports it.

    ``code`` is the protocol's own code (stable across polls, used to derive onset/end);
    ``kind`` is pumpgw's protocol-independent name (``occlusion``, ``air_in_line``,
    ``near_end``, ``end_of_infusion``, ``battery_low``, ``door_open``, ``motor_stalled``,
    ``pump_reset``, ``comm_timeout`` ...).

    ``latched``: the protocol reports this alarm once (reading it acknowledges it at the pump,
    as on the NE-1000), so its absence from a later reply does not mean it is over. The event
    layer keeps such an alarm active until the pump's state shows the condition resolved
    (the channel delivers again); each driver documents its rule.
    """

    code: str
    kind: str
    text: str
    priority: AlarmPriority = AlarmPriority.HIGH
    latched: bool = False


@dataclass(frozen=True, slots=True)
class PumpIdentity:
    manufacturer: str
    model: str
    serial_number: str | None = None
    firmware: str | None = None
    drug_library_version: str | None = None
    udi: str | None = None  # full human-readable UDI, where a protocol or source reports one


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """One delivery channel (a pump module, or the single channel of a syringe pump)."""

    channel_id: str
    state: ChannelState
    rate: Quantity | None = None
    vtbi: Quantity | None = None
    volume_infused: Quantity | None = None
    drug: str | None = None
    concentration: Quantity | None = None
    dose_rate: Quantity | None = None
    care_area: str | None = None
    patient_weight: Quantity | None = None
    alarms: tuple[Alarm, ...] = ()


@dataclass(frozen=True, slots=True)
class PumpSnapshot:
    """Everything one poll learned about one pump.

    ``device_time`` is the pump's own clock when the protocol reports one; ``received_at``
    is the gateway's (NTP-synchronised) wall clock when the reply arrived, timezone-aware.
    """

    pump_id: str
    identity: PumpIdentity
    channels: tuple[ChannelSnapshot, ...]
    received_at: datetime
    device_time: datetime | None = None
    raw_status: str = field(default="", compare=False)
