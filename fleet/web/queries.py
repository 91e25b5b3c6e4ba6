"""What each web page shows: part 1's report functions plus the few queries only a page needs.

One function per page, each returning a :class:`Page`: named :class:`Table` s plus summary
numbers. Where a table IS a report of ``fleet.reports`` (the same function behind
``/api/NAME``), the page records that in :attr:`Page.api`, and the page links that report's
JSON and CSV: what is on screen and what the API answers come from one function. Tables only
a page needs (open alerts with acknowledgement, the ward x hour heat map, stragglers, one
pump's history) are computed here and exported by the page itself (``?format=json|csv``).
No patient data exists in these tables. Times are UTC (the heat map's hours too).

This module holds the page model and the pages of the fleet as it is now (region, ward, pump,
firmware, swaps, not seen); the pages that aggregate a time window (library uptake, alarm
load, DERS use) are in :mod:`fleet.web.trends`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from fleet import reports
from fleet.reports.base import WARD
from fleet.web.svg import Series


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    @classmethod
    def of(cls, rows: list[Any], row_type: type) -> Table:
        names = [f.name for f in dataclasses.fields(row_type)]
        return cls(names, [[getattr(r, n) for n in names] for r in rows])


@dataclass
class Page:
    title: str
    tables: dict[str, Table] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)
    series: list[Series] = field(default_factory=list)
    # table name -> (report name, query parameters) of the /api route serving the same rows
    api: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def report(self, name: str, rows: list[Any], report: str, **params: Any) -> None:
        self.tables[name] = Table.of(rows, reports.REPORTS[report].row)
        self.api[name] = (report, {k: v for k, v in params.items() if v is not None})


def current_release(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        "SELECT version FROM library_releases ORDER BY coalesce(released_at, first_seen_at) DESC, version DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def region(conn: psycopg.Connection, now: datetime) -> Page:
    page = Page("Region overview")
    current = current_release(conn)
    page.report("gateways", reports.gateways(conn, now=now), "gateways")
    gws = page.tables["gateways"].as_dicts()
    # Age of last contact: not a report column (it changes every second), computed for the page.
    page.tables["gateways"].columns.append("last_contact_age_s")
    for row, g in zip(page.tables["gateways"].rows, gws, strict=True):
        last = max((t for t in (g["heartbeat_at"], g["last_message_at"]) if t is not None), default=None)
        row.append(None if last is None else round((now - last).total_seconds(), 1))
    states = conn.execute(
        # One state per pump: where it cannot be reached, why (gateway offline, comm lost ...);
        # otherwise what it does ("infusing" when any channel infuses, else the first channel's).
        """SELECT CASE WHEN g.state = 'offline' THEN 'gateway offline'
                       WHEN coalesce(p.availability, 'unknown') <> 'online' THEN coalesce(p.availability, 'unknown')
                       WHEN p.channel_states @> '[{"state": "infusing"}]' THEN 'infusing'
                       ELSE coalesce(p.channel_states -> 0 ->> 'state', 'online, state unknown') END,
                  count(*)::int
           FROM pumps p JOIN gateways g ON g.id = p.gateway_id GROUP BY 1 ORDER BY 2 DESC, 1"""
    ).fetchall()
    page.tables["pumps_by_state"] = Table(["state", "pumps"], [list(r) for r in states])
    wards = conn.execute(
        f"""SELECT {WARD} AS ward, count(DISTINCT g.id)::int,
                   count(DISTINCT g.id) FILTER (WHERE g.state = 'online')::int, count(p.pump)::int,
                   count(p.pump) FILTER (WHERE p.library_version = %(cur)s)::int
            FROM gateways g LEFT JOIN pumps p ON p.gateway_id = g.id GROUP BY 1 ORDER BY 1""",
        {"cur": current},
    ).fetchall()
    page.tables["wards"] = Table(
        ["ward", "gateways", "gateways_online", "pumps", "pumps_on_current_library"], [list(r) for r in wards]
    )
    page.tables["open_alerts"] = open_alerts(conn, now)
    online = sum(1 for g in gws if g["state"] == "online" and not g["stale"])
    page.numbers = {
        "gateways_online": online,
        "gateways_offline": len(gws) - online,
        "pumps": sum(g["pumps"] for g in gws),
        "current_library": current,
        "pumps_on_current_library": sum(r[4] for r in wards),
        "open_alerts": len(page.tables["open_alerts"].rows),
    }
    return page


def open_alerts(conn: psycopg.Connection, now: datetime, ward: str | None = None) -> Table:
    """Gateway alerts of the last 7 days nobody has acknowledged yet (alerts are one-shot)."""
    rows = conn.execute(
        f"""SELECT a.id, a.occurred_at, g.site, g.gateway, {WARD} AS ward, a.alert
            FROM gateway_alerts a JOIN gateways g ON g.id = a.gateway_id
            LEFT JOIN web_alert_ack k ON k.alert_id = a.id
            WHERE k.alert_id IS NULL AND a.occurred_at > %(since)s
              AND (%(ward)s::text IS NULL OR {WARD} = %(ward)s::text)
            ORDER BY a.occurred_at DESC LIMIT 500""",
        {"since": now - timedelta(days=7), "ward": ward},
    ).fetchall()
    return Table(["alert_id", "occurred_at", "site", "gateway", "ward", "alert"], [list(r) for r in rows])


def ward(conn: psycopg.Connection, name: str, now: datetime) -> Page | None:
    page = Page(f"Ward {name}")
    current = current_release(conn)
    page.report("inventory", reports.inventory(conn, ward=name), "inventory", ward=name)
    pumps = page.tables["inventory"].as_dicts()
    if not pumps and conn.execute(f"SELECT 1 FROM gateways g WHERE {WARD} = %s", (name,)).fetchone() is None:
        return None
    page.tables["open_alerts"] = open_alerts(conn, now, name)
    page.numbers = {
        "pumps": len(pumps),
        "pumps_online": sum(1 for p in pumps if p["availability"] == "online"),
        "pumps_on_current_library": sum(1 for p in pumps if current and p["library_version"] == current),
        "current_library": current,
        "open_alerts": len(page.tables["open_alerts"].rows),
    }
    return page


def pump(conn: psycopg.Connection, site: str, gateway: str, name: str) -> Page | None:
    head = conn.execute(
        f"""SELECT p.gateway_id, g.site, g.gateway, {WARD}, p.bed, p.manufacturer, p.model, p.serial_number,
                   p.asset_tag, p.udi, p.firmware, p.library_version, p.availability, p.first_seen, p.last_seen
            FROM pumps p JOIN gateways g ON g.id = p.gateway_id
            WHERE g.site = %s AND g.gateway = %s AND p.pump = %s""",
        (site, gateway, name),
    ).fetchone()
    if head is None:
        return None
    keys = [
        "site",
        "gateway",
        "ward",
        "bed",
        "manufacturer",
        "model",
        "serial_number",
        "asset_tag",
        "udi",
        "firmware",
        "library_version",
        "availability",
        "first_seen",
        "last_seen",
    ]
    page = Page(f"Pump {name} on {gateway}")
    page.numbers = dict(zip(keys, head[1:], strict=True))
    args = (head[0], name)
    page.tables["identity"] = Table(
        ["observed_at", "manufacturer", "model", "serial_number", "firmware", "library_version", "source"],
        [
            list(r)
            for r in conn.execute(
                """SELECT observed_at, manufacturer, model, serial_number, firmware, library_version, source
               FROM pump_identity_history WHERE gateway_id = %s AND pump = %s ORDER BY observed_at DESC LIMIT 200""",
                args,
            )
        ],
    )
    page.tables["alarms"] = Table(
        ["occurred_at", "phase", "channel", "condition", "priority"],
        [
            list(r)
            for r in conn.execute(
                """SELECT occurred_at, phase, channel, coalesce(alarm_kind, code), priority FROM alarms
               WHERE gateway_id = %s AND pump = %s ORDER BY occurred_at DESC LIMIT 200""",
                args,
            )
        ],
    )
    # Infusion events carry drug and care area only: the fleet never stores patient data.
    page.tables["events"] = Table(
        ["occurred_at", "kind", "channel", "drug", "care_area"],
        [
            list(r)
            for r in conn.execute(
                """SELECT occurred_at, kind, channel, drug, care_area FROM events
               WHERE gateway_id = %s AND pump = %s ORDER BY occurred_at DESC LIMIT 200""",
                args,
            )
        ],
    )
    return page


def firmware(conn: psycopg.Connection) -> Page:
    page = Page("Firmware spread by model")
    rows = reports.firmware_spread(conn)
    page.report("firmware", rows, "firmware")
    page.numbers = {"models": len({(r.manufacturer, r.model) for r in rows}), "versions": len(rows)}
    return page


def swaps(conn: psycopg.Connection, now: datetime, days: int = 90) -> Page:
    page = Page(f"Swaps and returns, last {days} days")
    rows = reports.swaps(conn, days=days, now=now)
    page.report("swaps", rows, "swaps", days=days)
    page.numbers = {
        "days": days,
        "swapped": sum(1 for r in rows if r.kind != "device_returned"),
        "returned": sum(1 for r in rows if r.kind == "device_returned"),
    }
    return page


def not_seen(conn: psycopg.Connection, now: datetime, days: int) -> Page:
    page = Page(f"Pumps not seen for {days} days")
    rows = reports.not_seen(conn, days=days, now=now)
    page.report("not_seen", rows, "not_seen", days=days)
    page.numbers = {"days": days, "pumps": len(rows)}
    return page
