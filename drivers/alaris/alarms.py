"""Alarm kinds and priorities for Alaris-style codes (pumpgw convention, reference §3.5 U)."""

from __future__ import annotations

from drivers.model import AlarmPriority

# kind -> priority; delivery-stopping conditions are high, the rest medium.
KNOWN_KINDS: dict[str, AlarmPriority] = {
    "occlusion": AlarmPriority.HIGH,
    "air_in_line": AlarmPriority.HIGH,
    "door_open": AlarmPriority.HIGH,
    "motor_stalled": AlarmPriority.HIGH,
    "comm_timeout": AlarmPriority.HIGH,
    "program_error": AlarmPriority.HIGH,
    "end_of_infusion": AlarmPriority.MEDIUM,
    "near_end": AlarmPriority.MEDIUM,
    "battery_low": AlarmPriority.MEDIUM,
    "pump_reset": AlarmPriority.MEDIUM,
}
