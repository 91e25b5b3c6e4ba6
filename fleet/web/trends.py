"""The pages that aggregate a time window: library uptake, alarm load and DERS use.

Each computes what only the page needs (the exact uptake curve, the ward x hour heat map, the
verdict pivot) with a cheap query, and links the ``fleet.reports`` report that exports the same
rows (:attr:`fleet.web.queries.Page.api`). Times are UTC, the heat map's hours too.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import psycopg

from fleet import reports
from fleet.reports.base import WARD
from fleet.web.queries import Page, Table, current_release
from fleet.web.svg import Series


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
