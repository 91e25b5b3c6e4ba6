"""What each web page shows: part 1's report functions plus the few queries only a page needs.

One function per page, each returning a :class:`Page`: named :class:`Table` s plus summary
numbers. Where a table IS a report of ``fleet.reports`` (the same function behind
``/api/NAME``), the page records that in :attr:`Page.api`, and the page links that report's
JSON and CSV: what is on screen and what the API answers come from one function. Tables only
a page needs (open alerts with acknowledgement, the ward x hour heat map, stragglers, one
pump's history) are computed here and exported by the page itself (``?format=json|csv``).
No patient data exists in these tables. Times are UTC (the heat map's hours too).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
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


def _release_time(conn: psycopg.Connection, version: str) -> datetime | None:
    row = conn.execute(
        "SELECT coalesce(released_at, first_seen_at) FROM library_releases WHERE version = %s", (version,)
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


def uptake(conn: psycopg.Connection, now: datetime, version: str | None = None) -> Page:
    """Per ward: uptake of the release (report ``uptake``), its curve and the stragglers.

    The curve is exact (one step per adoption) from the adoption times the report ranks
    (first observation on the version, not before the release); the ``uptake_timeline``
    report samples the same definition at fixed steps and is linked for export. Computing it
    here from one query keeps the page fast at 10,000 pumps (the sampled report is a
    pumps x steps join).
    """
    version = version or current_release(conn)
    page = Page(f"Library uptake: {version or 'no release known'}")
    rows = reports.uptake(conn, version=version)
    page.report("uptake", rows, "uptake", version=version)
    released = rows[0].released_at if rows else None
    step_h = max(1.0, round((now - released).total_seconds() / 3600 / 60, 1)) if released else 24.0
    page.api["uptake_timeline"] = ("uptake_timeline", {"version": version, "step_hours": step_h})
    if released is not None:
        page.series = _curves(conn, version, released, now, rows)
    stragglers = (
        conn.execute(
            f"""SELECT {WARD} AS ward, g.site, g.gateway, p.pump, p.library_version, p.last_seen
            FROM pumps p JOIN gateways g ON g.id = p.gateway_id
            WHERE p.library_version IS DISTINCT FROM %s ORDER BY 1, 2, 3, 4 LIMIT 2000""",
            (version,),
        ).fetchall()
        if version
        else []
    )
    page.tables["stragglers"] = Table(
        ["ward", "site", "gateway", "pump", "library_version", "last_seen"], [list(r) for r in stragglers]
    )
    page.numbers = {
        "version": version,
        "released_at": released,
        "stragglers": sum(r.pumps - r.on_version for r in rows),
        "wards_at_80": sum(1 for r in rows if r.reached_80_at is not None),
        "wards_at_100": sum(1 for r in rows if r.reached_100_at is not None),
    }
    return page


def _curves(
    conn: psycopg.Connection, version: str | None, released: datetime, now: datetime, rows: list[Any]
) -> list[Series]:
    adoption = conn.execute(
        f"""WITH first AS (
                SELECT gateway_id, pump, min(observed_at) AS at FROM pump_identity_history
                WHERE library_version = %s GROUP BY gateway_id, pump)
            SELECT {WARD} AS ward, f.at
            FROM pumps p JOIN gateways g ON g.id = p.gateway_id
            LEFT JOIN first f ON f.gateway_id = p.gateway_id AND f.pump = p.pump""",
        (version,),
    ).fetchall()
    hours: dict[str, list[float | None]] = defaultdict(list)
    for ward_name, first in adoption:
        hours[ward_name].append(None if first is None else max(0.0, (first - released).total_seconds() / 3600))
    end = (now - released).total_seconds() / 3600
    # Once every ward is at 100 %, the rest is flat: show up to 1.5x the slowest ward's time.
    done = [r.hours_to_100 for r in rows]
    if done and all(h is not None for h in done):
        end = min(end, max(max(done) * 1.5, 1.0))
    series = []
    for ward_name, hs in sorted(hours.items()):
        total, reached = len(hs), sorted(h for h in hs if h is not None)
        points, count = [(0.0, 0.0)], 0
        for h in reached:
            if h > end:
                break
            points.append((h, 100.0 * count / total))  # a step: flat until this adoption
            count += 1
            points.append((h, 100.0 * count / total))
        points.append((end, 100.0 * count / total))
        series.append(Series(ward_name, points))
    return series


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


def alarm_load(conn: psycopg.Connection, now: datetime, days: int = 7) -> Page:
    """Alarm onsets per ward and hour (heat map), per ward and condition, and the busiest pumps.

    Onset counts only, by cheap GROUP BYs: the reports ``alarm_conditions`` and ``alarm_load``
    (linked for export) count the same onsets and add each alarm's duration, which pairs every
    onset with its end -- too slow for a page at 10,000 pumps, fine for an export.
    """
    page = Page(f"Alarm load, last {days} days")
    # One scan of the window's onsets (no join), three groupings per gateway (GROUPING SETS):
    # by hour for the heat map, by condition, by pump; gateways map to wards afterwards.
    grouped = conn.execute(
        """SELECT GROUPING(hour, condition, pump), gateway_id, hour, condition, pump, count(*)::int,
                  count(*) FILTER (WHERE priority = 'high')::int
           FROM (SELECT gateway_id, pump, priority, coalesce(alarm_kind, code, 'unknown') AS condition,
                        extract(hour FROM occurred_at AT TIME ZONE 'UTC')::int AS hour
                 FROM alarms WHERE phase = 'onset' AND occurred_at >= %(since)s AND occurred_at < %(until)s) a
           GROUP BY GROUPING SETS ((gateway_id, hour), (gateway_id, condition), (gateway_id, pump))""",
        {"since": now - timedelta(days=days), "until": now},
    ).fetchall()
    gws = {
        gid: (ward, site, gw)
        for gid, ward, site, gw in conn.execute(f"SELECT g.id, {WARD}, g.site, g.gateway FROM gateways g")
    }
    by_hour: dict[tuple[str, int], int] = defaultdict(int)
    by_condition: dict[tuple[str, str], int] = defaultdict(int)
    per_pump = []
    # GROUPING() bits (hour, condition, pump): 0b011 = by hour, 0b101 = by condition, 0b110 = by pump.
    for bits, gid, hour, condition, pump, n, high in grouped:
        ward_name = gws[gid][0]
        if bits == 0b011:
            by_hour[(ward_name, hour)] += n
        elif bits == 0b101:
            by_condition[(ward_name, condition)] += n
        else:
            per_pump.append((ward_name, gid, pump, n, high))
    hours = sorted((w, h, n) for (w, h), n in by_hour.items())
    conditions = sorted(((w, c, n) for (w, c), n in by_condition.items()), key=lambda c: (c[0], -c[2], c[1]))
    per_pump.sort(key=lambda p: (-p[3], p[0], p[2]))
    names = {gid: (site, gw) for gid, (_, site, gw) in gws.items()}
    page.tables["ward_hour"] = Table(["ward", "hour", "onsets"], [list(r) for r in hours])
    page.tables["alarm_conditions"] = Table(["ward", "condition", "onsets"], [list(r) for r in conditions])
    page.api["alarm_conditions"] = ("alarm_conditions", {"days": days})
    page.tables["alarm_load"] = Table(
        ["ward", "site", "gateway", "pump", "onsets", "high_priority"],
        [[w, *names[gid], pump, n, high] for w, gid, pump, n, high in per_pump[:50]],
    )
    page.api["alarm_load"] = ("alarm_load", {"days": days})
    page.numbers = {"days": days, "onsets": sum(r[2] for r in hours), "pumps_alarming": len(per_pump)}
    return page


VERDICT_COLUMNS = {
    "within_limits": "within_limits",
    "below_soft_min": "soft_limit",
    "above_soft_max": "soft_limit",
    "below_hard_min": "hard_limit",
    "above_hard_max": "hard_limit",
    "drug_not_in_library": "not_in_library",
}
VERDICT_ORDER = ("within_limits", "soft_limit", "hard_limit", "not_in_library", "other")


def ders(conn: psycopg.Connection, now: datetime, days: int = 30) -> Page:
    """DERS use per ward and drug (library drug vs basic infusion) and the limit verdicts."""
    page = Page(f"DERS use and limit verdicts, last {days} days")
    use = reports.ders_use(conn, days=days, now=now)
    page.report("ders_use", use, "ders_use", days=days)
    verdicts = reports.limit_verdicts(conn, days=days, now=now)
    # The report is long (one row per ward, drug, verdict); the page pivots it per ward and drug.
    pivot: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for v in verdicts:
        column = VERDICT_COLUMNS.get(v.verdict, "other")
        pivot[(v.ward, v.drug or "(no drug)")][column] += v.programs
    page.tables["limit_verdicts"] = Table(
        ["ward", "drug", *VERDICT_ORDER],
        [[w, d, *(counts[c] for c in VERDICT_ORDER)] for (w, d), counts in sorted(pivot.items())],
    )
    page.api["limit_verdicts"] = ("limit_verdicts", {"days": days})
    library = sum(r.library_starts for r in use)
    total = library + sum(r.basic_starts for r in use)
    page.numbers = {
        "days": days,
        "starts": total,
        "library_share_pct": round(100.0 * library / total, 1) if total else None,
    }
    return page
