"""Drug-library uptake after a release: share of each ward's pumps on the release, time to 80/100 %.

The release is the pharmacy's current one (``{prefix}/library/current``, newest first seen), or
the version asked for. A pump adopted it at the first time it was observed running that
version (pump identity history, fed by state, inventory and traceability events); adoption
before the release was seen counts as at the release. Time to 80 % is when the
``ceil(0.8 * pumps)``-th pump of the ward adopted; empty while not reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from fleet.reports.base import WARD, fetch, now_or


@dataclass(frozen=True, slots=True)
class UptakeRow:
    ward: str
    version: str
    released_at: datetime
    pumps: int
    on_version: int
    share: float
    reached_80_at: datetime | None
    reached_100_at: datetime | None
    hours_to_80: float | None
    hours_to_100: float | None


@dataclass(frozen=True, slots=True)
class UptakePoint:
    ward: str
    at: datetime
    pumps: int
    on_version: int
    share: float


_RELEASE = """
WITH rel AS (
    SELECT version, coalesce(released_at, first_seen_at) AS t0 FROM library_releases
    WHERE %(version)s::text IS NULL OR version = %(version)s::text
    UNION ALL
    SELECT %(version)s::text, (SELECT min(observed_at) FROM pump_identity_history WHERE library_version = %(version)s::text)
    WHERE %(version)s::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM library_releases WHERE version = %(version)s::text)
    ORDER BY t0 DESC NULLS LAST LIMIT 1
), adopt AS (
    SELECT {ward} AS ward, p.library_version IS NOT DISTINCT FROM rel.version AS current,
           -- greatest() ignores NULL: a pump never seen on the version must stay NULL (not adopted)
           (SELECT CASE WHEN min(h.observed_at) IS NULL THEN NULL ELSE greatest(rel.t0, min(h.observed_at)) END
            FROM pump_identity_history h
            WHERE h.gateway_id = p.gateway_id AND h.pump = p.pump AND h.library_version = rel.version) AS adopted_at,
           rel.version, rel.t0
    FROM pumps p JOIN gateways g ON g.id = p.gateway_id CROSS JOIN rel
    WHERE rel.t0 IS NOT NULL
)
""".replace("{ward}", WARD)

_UPTAKE = (
    _RELEASE
    + """
, ranked AS (
    SELECT *, row_number() OVER (PARTITION BY ward ORDER BY adopted_at NULLS LAST) AS rn,
           count(*) OVER (PARTITION BY ward) AS n
    FROM adopt
)
SELECT ward, version, t0 AS released_at, n::int AS pumps, count(*) FILTER (WHERE current)::int AS on_version,
       (count(*) FILTER (WHERE current))::float / n AS share,
       min(adopted_at) FILTER (WHERE rn = ceil(0.8 * n)) AS reached_80_at,
       min(adopted_at) FILTER (WHERE rn = n) AS reached_100_at,
       (extract(epoch FROM min(adopted_at) FILTER (WHERE rn = ceil(0.8 * n)) - t0) / 3600.0)::float AS hours_to_80,
       (extract(epoch FROM min(adopted_at) FILTER (WHERE rn = n) - t0) / 3600.0)::float AS hours_to_100
FROM ranked GROUP BY ward, version, t0, n ORDER BY ward
"""
)

_TIMELINE = (
    _RELEASE
    + """
, steps AS (
    SELECT generate_series((SELECT min(t0) FROM adopt), %(until)s::timestamptz,
                           make_interval(secs => %(step)s)) AS at
)
SELECT a.ward, s.at, count(*)::int AS pumps, count(*) FILTER (WHERE a.adopted_at <= s.at)::int AS on_version,
       (count(*) FILTER (WHERE a.adopted_at <= s.at))::float / count(*) AS share
FROM adopt a CROSS JOIN steps s GROUP BY a.ward, s.at ORDER BY a.ward, s.at
"""
)


def uptake(conn: psycopg.Connection, *, version: str | None = None) -> list[UptakeRow]:
    """Per ward: pumps on ``version`` (default: the current release) and the time to 80 % and 100 %."""
    return fetch(conn, UptakeRow, _UPTAKE, {"version": version})


def uptake_timeline(
    conn: psycopg.Connection, *, version: str | None = None, step_hours: float = 24, until: datetime | None = None
) -> list[UptakePoint]:
    """Per ward, the share of pumps on ``version`` every ``step_hours`` from the release to ``until``."""
    if step_hours <= 0:
        raise ValueError("step_hours must be positive")
    return fetch(
        conn, UptakePoint, _TIMELINE, {"version": version, "until": now_or(until), "step": step_hours * 3600.0}
    )
