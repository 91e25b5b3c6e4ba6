"""What each web page shows, as SQL over the fleet schema (fleet/db/migrations.py).

One function per page, each returning a :class:`Page`: named :class:`Table` s (what the CSV
and JSON links serve, so the numbers on screen and in the export are the same rows) plus
chart inputs. No patient data exists in these tables; pages show device, program, verdict and
alarm data only. Times are shown in UTC (the hour of the heat map too).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from fleet.web.svg import Series


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]


@dataclass
class Page:
    title: str
    tables: dict[str, Table] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)
    series: list[Series] = field(default_factory=list)


def current_release(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        "SELECT version FROM library_releases ORDER BY coalesce(released_at, first_seen_at) DESC, version DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def _release_time(conn: psycopg.Connection, version: str) -> datetime | None:
    row = conn.execute(
        "SELECT coalesce(released_at, first_seen_at) FROM library_releases WHERE version = %s", (version,)
    ).fetchone()
    return row[0] if row else None


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round((now - then).total_seconds(), 1)


def region(conn: psycopg.Connection, now: datetime) -> Page:
    page = Page("Region overview")
    current = current_release(conn)
    gws = conn.execute(
        """SELECT g.id, g.site, g.gateway, coalesce(g.ward, '?'), coalesce(g.state, 'unknown'),
                  greatest(g.heartbeat_at, g.last_message_at), g.library_version, g.outbox_depth,
                  (SELECT count(*) FROM pumps p WHERE p.gateway_id = g.id)
           FROM gateways g ORDER BY g.ward, g.site, g.gateway"""
    ).fetchall()
    page.tables["gateways"] = Table(
        ["gateway_id", "site", "gateway", "ward", "state", "last_contact", "age_s", "library_version",
         "library_current", "outbox_depth", "pumps"],
        [[gid, site, gw, ward, state, last, _age(now, last), lib, lib == current if current else None, depth, n]
         for gid, site, gw, ward, state, last, lib, depth, n in gws],
    )
    states = conn.execute(
        "SELECT coalesce(availability, 'unknown'), count(*) FROM pumps GROUP BY 1 ORDER BY 1"
    ).fetchall()
    page.tables["pumps_by_state"] = Table(["availability", "pumps"], [list(r) for r in states])
    wards = conn.execute(
        """SELECT coalesce(g.ward, '?'), count(DISTINCT g.id), count(p.pump),
                  count(p.pump) FILTER (WHERE p.library_version = %(cur)s),
                  count(p.pump) FILTER (WHERE p.availability = 'online')
           FROM gateways g LEFT JOIN pumps p ON p.gateway_id = g.id GROUP BY 1 ORDER BY 1""",
        {"cur": current},
    ).fetchall()
    page.tables["wards"] = Table(
        ["ward", "gateways", "pumps", "pumps_on_current_library", "pumps_online"], [list(r) for r in wards]
    )
    page.tables["open_alerts"] = open_alerts(conn, now)
    online = sum(1 for r in gws if r[4] == "online")
    page.numbers = {
        "gateways_online": online,
        "gateways_offline": len(gws) - online,
        "pumps": sum(r[8] for r in gws),
        "current_library": current,
        "pumps_on_current_library": sum(r[3] for r in wards),
        "open_alerts": len(page.tables["open_alerts"].rows),
    }
    return page


def open_alerts(conn: psycopg.Connection, now: datetime, ward: str | None = None) -> Table:
    """Gateway alerts of the last 7 days nobody has acknowledged yet (alerts are one-shot)."""
    rows = conn.execute(
        """SELECT a.id, g.site, g.gateway, coalesce(g.ward, '?'), a.alert, a.occurred_at
           FROM gateway_alerts a JOIN gateways g ON g.id = a.gateway_id
           LEFT JOIN web_alert_ack k ON k.alert_id = a.id
           WHERE k.alert_id IS NULL AND a.occurred_at > %(since)s
             AND (%(ward)s::text IS NULL OR g.ward = %(ward)s)
           ORDER BY a.occurred_at DESC LIMIT 500""",
        {"since": now - timedelta(days=7), "ward": ward},
    ).fetchall()
    return Table(["alert_id", "site", "gateway", "ward", "alert", "occurred_at"], [list(r) for r in rows])


def ward(conn: psycopg.Connection, name: str, now: datetime) -> Page | None:
    if conn.execute("SELECT 1 FROM gateways WHERE ward = %s LIMIT 1", (name,)).fetchone() is None:
        return None
    page = Page(f"Ward {name}")
    current = current_release(conn)
    rows = conn.execute(
        """SELECT g.id, g.gateway, p.pump, p.bed, p.manufacturer, p.model, p.serial_number, p.asset_tag,
                  p.firmware, p.library_version, coalesce(p.availability, 'unknown'), p.last_seen
           FROM pumps p JOIN gateways g ON g.id = p.gateway_id WHERE g.ward = %s
           ORDER BY g.gateway, p.pump""",
        (name,),
    ).fetchall()
    page.tables["pumps"] = Table(
        ["gateway_id", "gateway", "pump", "bed", "manufacturer", "model", "serial_number", "asset_tag",
         "firmware", "library_version", "availability", "last_seen"],
        [list(r) for r in rows],
    )
    page.tables["open_alerts"] = open_alerts(conn, now, name)
    page.numbers = {
        "pumps": len(rows),
        "pumps_online": sum(1 for r in rows if r[10] == "online"),
        "pumps_on_current_library": sum(1 for r in rows if current and r[9] == current),
        "current_library": current,
        "open_alerts": len(page.tables["open_alerts"].rows),
    }
    return page


def pump(conn: psycopg.Connection, gateway_id: int, name: str) -> Page | None:
    head = conn.execute(
        """SELECT g.site, g.gateway, g.ward, p.bed, p.manufacturer, p.model, p.serial_number, p.asset_tag,
                  p.udi, p.firmware, p.library_version, p.availability, p.first_seen, p.last_seen
           FROM pumps p JOIN gateways g ON g.id = p.gateway_id WHERE p.gateway_id = %s AND p.pump = %s""",
        (gateway_id, name),
    ).fetchone()
    if head is None:
        return None
    keys = ["site", "gateway", "ward", "bed", "manufacturer", "model", "serial_number", "asset_tag", "udi",
            "firmware", "library_version", "availability", "first_seen", "last_seen"]
    page = Page(f"Pump {name} on {head[1]}")
    page.numbers = dict(zip(keys, head, strict=True))
    args = (gateway_id, name)
    page.tables["identity"] = Table(
        ["observed_at", "manufacturer", "model", "serial_number", "firmware", "library_version", "source"],
        [list(r) for r in conn.execute(
            """SELECT observed_at, manufacturer, model, serial_number, firmware, library_version, source
               FROM pump_identity_history WHERE gateway_id = %s AND pump = %s ORDER BY observed_at DESC LIMIT 200""",
            args)],
    )
    page.tables["alarms"] = Table(
        ["occurred_at", "phase", "channel", "code", "priority", "text"],
        [list(r) for r in conn.execute(
            """SELECT occurred_at, phase, channel, code, priority, text FROM alarms
               WHERE gateway_id = %s AND pump = %s ORDER BY occurred_at DESC LIMIT 200""", args)],
    )
    # Infusion events carry drug and care area only: the fleet never stores patient data.
    page.tables["events"] = Table(
        ["occurred_at", "kind", "channel", "drug", "care_area"],
        [list(r) for r in conn.execute(
            """SELECT occurred_at, kind, channel, drug, care_area FROM events
               WHERE gateway_id = %s AND pump = %s ORDER BY occurred_at DESC LIMIT 200""", args)],
    )
    return page


def uptake(conn: psycopg.Connection, now: datetime, version: str | None = None) -> Page:
    """Share of each ward's pumps on ``version`` (default: the newest release) since its release.

    A pump counts from the first time it was seen on the version (identity history, or its
    current identity); libraries only move forward on a pump, so the share never falls.
    """
    version = version or current_release(conn)
    page = Page(f"Library uptake: {version or 'no release known'}")
    if version is None:
        page.tables["wards"] = Table(["ward", "pumps", "on_version", "share_pct", "t80_h", "t100_h"], [])
        page.tables["stragglers"] = Table(["ward", "gateway_id", "gateway", "pump", "library_version", "last_seen"], [])
        return page
    released = _release_time(conn, version)
    rows = conn.execute(
        """SELECT coalesce(g.ward, '?'), g.id, g.gateway, p.pump, p.library_version, p.last_seen,
                  least((SELECT min(h.observed_at) FROM pump_identity_history h
                         WHERE h.gateway_id = p.gateway_id AND h.pump = p.pump AND h.library_version = %(v)s),
                        CASE WHEN p.library_version = %(v)s THEN coalesce(p.identity_at, p.last_seen) END)
           FROM pumps p JOIN gateways g ON g.id = p.gateway_id ORDER BY 1, 3, 4""",
        {"v": version},
    ).fetchall()
    start = released or min((r[6] for r in rows if r[6] is not None), default=now)
    per_ward: dict[str, list[float | None]] = defaultdict(list)
    stragglers = []
    for ward_name, gid, gw, pname, lib, last_seen, reached in rows:
        per_ward[ward_name].append(None if reached is None else max(0.0, (reached - start).total_seconds() / 3600))
        if reached is None:
            stragglers.append([ward_name, gid, gw, pname, lib, last_seen])
    summary, series = [], []
    for ward_name, hours in sorted(per_ward.items()):
        reached_h = sorted(h for h in hours if h is not None)
        total = len(hours)
        points = [(0.0, 0.0)] + [(h, 100.0 * (i + 1) / total) for i, h in enumerate(reached_h)]
        points.append((max((now - start).total_seconds() / 3600, points[-1][0]), points[-1][1]))
        series.append(Series(ward_name, points))
        summary.append([
            ward_name, total, len(reached_h), round(100.0 * len(reached_h) / total, 1) if total else 0.0,
            _time_to(reached_h, total, 0.8), _time_to(reached_h, total, 1.0),
        ])
    page.tables["wards"] = Table(["ward", "pumps", "on_version", "share_pct", "t80_h", "t100_h"], summary)
    page.tables["stragglers"] = Table(["ward", "gateway_id", "gateway", "pump", "library_version", "last_seen"], stragglers)
    page.numbers = {"version": version, "released_at": released, "stragglers": len(stragglers)}
    page.series = series
    return page


def _time_to(reached_h: list[float], total: int, share: float) -> float | None:
    """Hours after the release until ``share`` of the ward's pumps were on it (None: not yet)."""
    if total == 0:
        return None
    needed = -(-int(share * total * 1000) // 1000)  # ceil without float surprises
    needed = max(1, min(total, needed))
    return round(reached_h[needed - 1], 2) if len(reached_h) >= needed else None


def firmware(conn: psycopg.Connection) -> Page:
    page = Page("Firmware spread by model")
    rows = conn.execute(
        """SELECT coalesce(manufacturer, '?'), coalesce(model, '?'), coalesce(firmware, '?'), count(*)
           FROM pumps GROUP BY 1, 2, 3 ORDER BY 1, 2, 4 DESC, 3"""
    ).fetchall()
    page.tables["firmware"] = Table(["manufacturer", "model", "firmware", "pumps"], [list(r) for r in rows])
    page.numbers = {"models": len({(r[0], r[1]) for r in rows}), "versions": len(rows)}
    return page


def swaps(conn: psycopg.Connection, now: datetime, days: int = 90) -> Page:
    page = Page("Swaps and returns")
    rows = conn.execute(
        """SELECT e.occurred_at, e.kind, coalesce(g.ward, '?'), g.id, g.gateway, e.pump,
                  e.previous_identity ->> 'sn', p.serial_number
           FROM events e JOIN gateways g ON g.id = e.gateway_id
           LEFT JOIN pumps p ON p.gateway_id = e.gateway_id AND p.pump = e.pump
           WHERE e.kind IN ('device_swapped', 'device_returned') AND e.occurred_at > %s
           ORDER BY e.occurred_at DESC LIMIT 1000""",
        (now - timedelta(days=days),),
    ).fetchall()
    page.tables["swaps"] = Table(
        ["occurred_at", "kind", "ward", "gateway_id", "gateway", "pump", "previous_serial", "serial_now"],
        [list(r) for r in rows],
    )
    page.numbers = {
        "days": days,
        "swapped": sum(1 for r in rows if r[1] == "device_swapped"),
        "returned": sum(1 for r in rows if r[1] == "device_returned"),
    }
    return page


def not_seen(conn: psycopg.Connection, now: datetime, days: int) -> Page:
    page = Page(f"Pumps not seen for {days} days")
    rows = conn.execute(
        """SELECT coalesce(g.ward, '?'), g.id, g.gateway, p.pump, p.manufacturer, p.model, p.serial_number,
                  p.asset_tag, p.last_seen
           FROM pumps p JOIN gateways g ON g.id = p.gateway_id
           WHERE p.last_seen IS NULL OR p.last_seen < %s ORDER BY p.last_seen NULLS FIRST""",
        (now - timedelta(days=days),),
    ).fetchall()
    page.tables["pumps"] = Table(
        ["ward", "gateway_id", "gateway", "pump", "manufacturer", "model", "serial_number", "asset_tag", "last_seen"],
        [list(r) for r in rows],
    )
    page.numbers = {"days": days, "pumps": len(rows)}
    return page


def alarm_load(conn: psycopg.Connection, now: datetime, days: int = 7) -> Page:
    page = Page(f"Alarm load, last {days} days (hour of day, UTC)")
    rows = conn.execute(
        """SELECT coalesce(g.ward, '?'), extract(hour FROM a.occurred_at AT TIME ZONE 'UTC')::int, count(*)
           FROM alarms a JOIN gateways g ON g.id = a.gateway_id
           WHERE a.phase = 'onset' AND a.occurred_at > %s GROUP BY 1, 2 ORDER BY 1, 2""",
        (now - timedelta(days=days),),
    ).fetchall()
    page.tables["alarm_load"] = Table(["ward", "hour", "alarms"], [list(r) for r in rows])
    top = conn.execute(
        """SELECT coalesce(g.ward, '?'), coalesce(a.code, '?'), count(*)
           FROM alarms a JOIN gateways g ON g.id = a.gateway_id
           WHERE a.phase = 'onset' AND a.occurred_at > %s GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 20""",
        (now - timedelta(days=days),),
    ).fetchall()
    page.tables["top_conditions"] = Table(["ward", "code", "alarms"], [list(r) for r in top])
    page.numbers = {"days": days, "alarms": sum(r[2] for r in rows)}
    return page


def ders(conn: psycopg.Connection, now: datetime, days: int = 30) -> Page:
    """DERS use per ward and drug: programs checked against the library vs basic infusions
    (no drug from the library), and the limit verdicts they got."""
    page = Page(f"DERS use and limit verdicts, last {days} days")
    rows = conn.execute(
        """SELECT coalesce(g.ward, '?'), coalesce(v.drug, '(basic infusion)'), count(*),
                  count(*) FILTER (WHERE v.drug IS NULL OR 'drug_not_in_library' = ANY(v.kinds)),
                  count(*) FILTER (WHERE 'within_limits' = ANY(v.kinds)),
                  count(*) FILTER (WHERE v.kinds && ARRAY['below_soft_min', 'above_soft_max']),
                  count(*) FILTER (WHERE v.kinds && ARRAY['below_hard_min', 'above_hard_max'])
           FROM verdicts v JOIN gateways g ON g.id = v.gateway_id
           WHERE v.observed_at > %s GROUP BY 1, 2 ORDER BY 1, 2""",
        (now - timedelta(days=days),),
    ).fetchall()
    page.tables["ders"] = Table(
        ["ward", "drug", "programs", "without_library", "within_limits", "soft_limit", "hard_limit"],
        [list(r) for r in rows],
    )
    total = sum(r[2] for r in rows)
    page.numbers = {
        "days": days,
        "programs": total,
        "library_use_pct": round(100.0 * (total - sum(r[3] for r in rows)) / total, 1) if total else None,
    }
    return page
