"""Fleet inventory with the columns a CMMS import expects, and pumps not seen for N days.

One row per pump slot of a gateway (the configured pump id), with the physical device last
identified there. Asset tag + manufacturer/model/serial are the CMMS key (CSV for systems
without an API). "Not seen" is the hoarded-or-lost list: last contact older than N days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from fleet.reports.base import WARD, fetch, now_or


@dataclass(frozen=True, slots=True)
class InventoryRow:
    site: str
    gateway: str
    ward: str
    pump: str
    bed: str | None
    asset_tag: str | None
    udi: str | None
    manufacturer: str | None
    model: str | None
    serial_number: str | None
    firmware: str | None
    library_version: str | None
    availability: str | None
    first_seen: datetime | None
    last_seen: datetime | None


_INVENTORY = f"""
SELECT g.site, g.gateway, {WARD} AS ward, p.pump, p.bed, p.asset_tag, p.udi, p.manufacturer, p.model,
       p.serial_number, p.firmware, p.library_version,
       CASE WHEN g.state = 'offline' THEN 'offline' ELSE p.availability END AS availability,
       p.first_seen, p.last_seen
FROM pumps p JOIN gateways g ON g.id = p.gateway_id
WHERE (%(ward)s::text IS NULL OR {WARD} = %(ward)s::text)
ORDER BY ward, g.site, g.gateway, p.pump
"""


def inventory(conn: psycopg.Connection, *, ward: str | None = None) -> list[InventoryRow]:
    """Every pump the fleet knows, optionally of one ward."""
    return fetch(conn, InventoryRow, _INVENTORY, {"ward": ward})


@dataclass(frozen=True, slots=True)
class NotSeenRow:
    site: str
    gateway: str
    ward: str
    pump: str
    asset_tag: str | None
    manufacturer: str | None
    model: str | None
    serial_number: str | None
    last_seen: datetime | None
    days_unseen: float | None


_NOT_SEEN = f"""
SELECT g.site, g.gateway, {WARD} AS ward, p.pump, p.asset_tag, p.manufacturer, p.model, p.serial_number,
       p.last_seen, (extract(epoch FROM (%(now)s::timestamptz - p.last_seen)) / 86400.0)::float AS days_unseen
FROM pumps p JOIN gateways g ON g.id = p.gateway_id
WHERE p.last_seen IS NULL OR p.last_seen < %(cutoff)s::timestamptz
ORDER BY p.last_seen NULLS FIRST, ward, p.pump
"""


def not_seen(conn: psycopg.Connection, *, days: float = 7, now: datetime | None = None) -> list[NotSeenRow]:
    """Pumps with no message for more than ``days`` days (never seen ones first)."""
    t = now_or(now)
    return fetch(conn, NotSeenRow, _NOT_SEEN, {"now": t, "cutoff": t - timedelta(days=days)})
