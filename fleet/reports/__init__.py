"""The fleet's reports: plain functions over a psycopg connection returning typed rows.

:data:`REPORTS` names them for the CLI (``pumpgw fleet report NAME``) and the HTTP API
(``/api/NAME`` and ``/api/NAME.csv``); the web pages use the same functions. Names and
signatures are a contract with the web UI: add, do not rename.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleet.reports.alarms import AlarmConditionRow, AlarmLoadRow, alarm_conditions, alarm_load
from fleet.reports.ders import DersUseRow, VerdictRow, ders_use, limit_verdicts
from fleet.reports.devices import FirmwareRow, SwapRow, firmware_spread, swaps
from fleet.reports.gateways import AlertRow, GatewayRow, gateway_alerts, gateways
from fleet.reports.inventory import InventoryRow, NotSeenRow, inventory, not_seen
from fleet.reports.uptake import UptakePoint, UptakeRow, uptake, uptake_timeline


@dataclass(frozen=True, slots=True)
class ReportSpec:
    name: str
    function: Callable[..., list[Any]]
    row: type
    title: str
    params: dict[str, type]  # keyword parameters a caller may pass (query string / CLI --param)


REPORTS: dict[str, ReportSpec] = {
    spec.name: spec
    for spec in (
        ReportSpec("inventory", inventory, InventoryRow, "Fleet inventory (CMMS columns)", {"ward": str}),
        ReportSpec("uptake", uptake, UptakeRow, "Drug-library uptake per ward", {"version": str}),
        ReportSpec(
            "uptake_timeline",
            uptake_timeline,
            UptakePoint,
            "Library uptake over time",
            {"version": str, "step_hours": float},
        ),
        ReportSpec("firmware", firmware_spread, FirmwareRow, "Firmware spread by model", {}),
        ReportSpec("swaps", swaps, SwapRow, "Device swaps and returns", {"days": float}),
        ReportSpec("not_seen", not_seen, NotSeenRow, "Pumps not seen for N days", {"days": float}),
        ReportSpec("alarm_load", alarm_load, AlarmLoadRow, "Alarm load per pump", {"days": float}),
        ReportSpec(
            "alarm_conditions", alarm_conditions, AlarmConditionRow, "Alarm conditions per ward", {"days": float}
        ),
        ReportSpec("ders_use", ders_use, DersUseRow, "DERS use: library drug vs basic infusion", {"days": float}),
        ReportSpec("limit_verdicts", limit_verdicts, VerdictRow, "Limit verdicts per ward and drug", {"days": float}),
        ReportSpec("gateways", gateways, GatewayRow, "Gateways and their health", {}),
        ReportSpec("gateway_alerts", gateway_alerts, AlertRow, "Gateway technical alerts", {"days": float}),
    )
}

__all__ = [
    "REPORTS",
    "ReportSpec",
    "inventory",
    "uptake",
    "uptake_timeline",
    "firmware_spread",
    "swaps",
    "not_seen",
    "alarm_load",
    "alarm_conditions",
    "ders_use",
    "limit_verdicts",
    "gateways",
    "gateway_alerts",
    "InventoryRow",
    "UptakeRow",
    "UptakePoint",
    "FirmwareRow",
    "SwapRow",
    "NotSeenRow",
    "AlarmLoadRow",
    "AlarmConditionRow",
    "DersUseRow",
    "VerdictRow",
    "GatewayRow",
    "AlertRow",
]
