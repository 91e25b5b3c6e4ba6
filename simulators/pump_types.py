"""What a simulated pump is described and read in: identity, program, alarms, delivery state.

The vocabulary every protocol front-end and the scenario share with
:class:`~simulators.pump_model.SimulatedPump` (which re-exports these names, as most callers
import them from there). Plain values, no behaviour.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

ALARM_KINDS: dict[str, bool] = {
    # kind -> stops delivery
    "occlusion": True,
    "air_in_line": True,
    "door_open": True,
    "motor_stalled": True,
    "end_of_infusion": False,
    "near_end": False,
    "battery_low": False,
    "pump_reset": False,
    "comm_timeout": True,
    "program_error": True,
    "phase_out_of_range": True,
}


class PumpModelError(Exception):
    """A request the simulated pump refuses (no program, alarm active, bad value)."""


class DeliveryState(enum.StrEnum):
    IDLE = "idle"  # no program
    STOPPED = "stopped"
    INFUSING = "infusing"
    PAUSED = "paused"
    KVO = "kvo"


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    manufacturer: str
    model: str
    serial_number: str
    firmware: str
    library_version: str | None = None
    care_area: str | None = None
    readable: bool = True  # False: the pump answers identity queries without values (fault step)


@dataclass(frozen=True, slots=True)
class Program:
    """What the clinician programmed. ``vtbi_ml=None`` means no volume limit."""

    rate_ml_h: Decimal
    vtbi_ml: Decimal | None = None
    drug: str | None = None
    concentration: Decimal | None = None
    concentration_unit: str | None = None  # e.g. "mg/mL"
    dose_rate: Decimal | None = None
    dose_unit: str | None = None  # e.g. "ug/kg/min"
    patient_weight_kg: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ActiveAlarm:
    kind: str
    since_s: float  # model seconds
    acknowledged: bool = False
