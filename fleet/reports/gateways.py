"""Gateways and their self-health, and the gateways' technical alerts.

A gateway is "stale" when it claims to be online but its heartbeat (or, for gateways that do
not send one yet, its last message) is older than three heartbeat intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from fleet.reports.base import WARD, fetch, now_or


@dataclass(frozen=True, slots=True)
class GatewayRow:
    site: str
    gateway: str
    ward: str
    state: str | None
    stale: bool
    since: datetime | None
    version: str | None
    heartbeat_at: datetime | None
    last_message_at: datetime | None
    outbox_depth: int | None
    outbox_oldest_age_s: float | None
    library_version: str | None
    library_applied_at: datetime | None
    central_library_version: str | None
    pumps: int


_GATEWAYS = f"""
SELECT g.site, g.gateway, {WARD} AS ward, g.state,
       (g.state = 'online' AND coalesce(g.heartbeat_at, g.last_message_at)
            < %(now)s::timestamptz - make_interval(secs => 3 * coalesce(g.heartbeat_interval_s, 600))) AS stale,
       g.state_since AS since, g.version, g.heartbeat_at, g.last_message_at, g.outbox_depth, g.outbox_oldest_age_s,
       g.library_version, g.library_applied_at, g.central_library_version,
       (SELECT count(*) FROM pumps p WHERE p.gateway_id = g.id)::int AS pumps
FROM gateways g ORDER BY ward, g.site, g.gateway
"""


def gateways(conn: psycopg.Connection, *, now: datetime | None = None) -> list[GatewayRow]:
    return fetch(conn, GatewayRow, _GATEWAYS, {"now": now_or(now)})


@dataclass(frozen=True, slots=True)
class AlertRow:
    occurred_at: datetime
    site: str
    gateway: str
    ward: str
    alert: str
    details: dict[str, str]


_ALERTS = f"""
SELECT a.occurred_at, g.site, g.gateway, {WARD} AS ward, a.alert, a.details
FROM gateway_alerts a JOIN gateways g ON g.id = a.gateway_id
WHERE a.occurred_at >= %(since)s ORDER BY a.occurred_at DESC, a.id DESC
"""


def gateway_alerts(conn: psycopg.Connection, *, days: float = 7, now: datetime | None = None) -> list[AlertRow]:
    return fetch(conn, AlertRow, _ALERTS, {"since": now_or(now) - timedelta(days=days)})
