"""DERS use: infusions started with a library drug vs basic infusions, and limit verdicts.

A delivery start whose channel names a drug used the drug library; one without a drug is a
basic (rate-only) infusion, which counts against DERS compliance. Limit verdicts come from the
gateways' drug-library verdicts on the running programs: one row per change of a channel's
verdict set (a new program or a changed one), counted per ward, drug and verdict kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from fleet.reports.base import WARD, fetch, now_or


@dataclass(frozen=True, slots=True)
class DersUseRow:
    ward: str
    drug: str | None
    library_starts: int
    basic_starts: int
    library_share: float


@dataclass(frozen=True, slots=True)
class VerdictRow:
    ward: str
    drug: str | None
    verdict: str
    programs: int


_USE = f"""
WITH starts AS (
    SELECT {WARD} AS ward, e.drug
    FROM events e JOIN gateways g ON g.id = e.gateway_id
    WHERE e.kind = 'delivery_start' AND e.occurred_at >= %(since)s AND e.occurred_at < %(until)s
)
SELECT ward, drug, count(*) FILTER (WHERE drug IS NOT NULL)::int AS library_starts,
       count(*) FILTER (WHERE drug IS NULL)::int AS basic_starts,
       (count(*) FILTER (WHERE drug IS NOT NULL))::float / count(*) AS library_share
FROM starts GROUP BY ward, drug ORDER BY ward, drug NULLS LAST
"""

_VERDICTS = f"""
SELECT {WARD} AS ward, v.drug, k AS verdict, count(*)::int AS programs
FROM verdicts v JOIN gateways g ON g.id = v.gateway_id CROSS JOIN unnest(v.kinds) AS k
WHERE v.observed_at >= %(since)s AND v.observed_at < %(until)s
GROUP BY 1, 2, 3 ORDER BY 1, 2 NULLS LAST, programs DESC, 3
"""


def ders_use(conn: psycopg.Connection, *, days: float = 30, now: datetime | None = None) -> list[DersUseRow]:
    t = now_or(now)
    return fetch(conn, DersUseRow, _USE, {"since": t - timedelta(days=days), "until": t})


def limit_verdicts(conn: psycopg.Connection, *, days: float = 30, now: datetime | None = None) -> list[VerdictRow]:
    t = now_or(now)
    return fetch(conn, VerdictRow, _VERDICTS, {"since": t - timedelta(days=days), "until": t})
