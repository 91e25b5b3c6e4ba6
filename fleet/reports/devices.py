"""Firmware spread by model, and swaps/returns (traceability events).

Firmware spread answers "which pumps run an outdated firmware": every (manufacturer, model,
firmware) with its pump count and its share of that model. Swaps and returns come from the
gateways' traceability events (a different device appeared in a slot, a device came back)
and from identity changes that changed the serial number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from fleet.reports.base import WARD, fetch, now_or


@dataclass(frozen=True, slots=True)
class FirmwareRow:
    manufacturer: str | None
    model: str | None
    firmware: str | None
    pumps: int
    share_of_model: float


_FIRMWARE = """
SELECT manufacturer, model, firmware, count(*)::int AS pumps,
       count(*)::float / sum(count(*)) OVER (PARTITION BY manufacturer, model) AS share_of_model
FROM pumps WHERE manufacturer IS NOT NULL OR model IS NOT NULL
GROUP BY manufacturer, model, firmware ORDER BY manufacturer, model, pumps DESC, firmware
"""


def firmware_spread(conn: psycopg.Connection) -> list[FirmwareRow]:
    return fetch(conn, FirmwareRow, _FIRMWARE)


@dataclass(frozen=True, slots=True)
class SwapRow:
    occurred_at: datetime
    site: str
    gateway: str
    ward: str
    pump: str
    kind: str
    previous_serial: str | None
    serial_number: str | None
    model: str | None


_SWAPS = f"""
SELECT e.occurred_at, g.site, g.gateway, {WARD} AS ward, e.pump, e.kind,
       coalesce(e.detail->>'previous_serial', e.previous_identity->>'sn') AS previous_serial,
       coalesce(e.detail->>'serial', p.serial_number) AS serial_number,
       coalesce(e.detail->>'model', e.previous_identity->>'model', p.model) AS model
FROM events e JOIN gateways g ON g.id = e.gateway_id
LEFT JOIN pumps p ON p.gateway_id = e.gateway_id AND p.pump = e.pump
WHERE e.occurred_at >= %(since)s AND e.occurred_at < %(until)s
  AND (e.kind IN ('device_swapped', 'device_returned')
       OR (e.kind = 'identity_changed'
           AND e.previous_identity->>'sn' IS DISTINCT FROM p.serial_number))
ORDER BY e.occurred_at DESC, e.id DESC
"""


def swaps(conn: psycopg.Connection, *, days: float = 90, now: datetime | None = None) -> list[SwapRow]:
    """Device swaps and returns of the last ``days`` days, newest first."""
    t = now_or(now)
    return fetch(conn, SwapRow, _SWAPS, {"since": t - timedelta(days=days), "until": t})
