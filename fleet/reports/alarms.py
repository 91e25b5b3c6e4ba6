"""Alarm load per ward and pump: onsets, total alarm time, and the top conditions.

An alarm's duration runs from its onset to the end with the same ``alert_instance_id``;
an alarm still open at the end of the window counts until then (an end after the window
is not looked for: the window's load is what happened inside it). Only onsets inside the window
are counted. "Top conditions" ranks the protocol-independent alarm kinds (occlusion, air in
line ...) by onsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from fleet.reports.base import WARD, fetch, now_or


@dataclass(frozen=True, slots=True)
class AlarmLoadRow:
    ward: str
    site: str
    gateway: str
    pump: str
    onsets: int
    high_priority: int
    alarm_seconds: float
    top_condition: str | None


@dataclass(frozen=True, slots=True)
class AlarmConditionRow:
    ward: str
    condition: str
    onsets: int
    alarm_seconds: float


_SPANS = f"""
WITH onset AS (
    SELECT a.gateway_id, a.pump, a.alert_instance_id, a.occurred_at, a.priority,
           coalesce(a.alarm_kind, a.code, 'unknown') AS condition
    FROM alarms a
    WHERE a.phase = 'onset' AND a.occurred_at >= %(since)s AND a.occurred_at < %(until)s
), ends AS (
    SELECT gateway_id, alert_instance_id, min(occurred_at) AS ended_at FROM alarms
    WHERE phase = 'end' AND occurred_at >= %(since)s AND occurred_at < %(until)s
    GROUP BY gateway_id, alert_instance_id
), spans AS (
    SELECT o.*, {WARD} AS ward, g.site, g.gateway,
           extract(epoch FROM coalesce(e.ended_at, %(until)s::timestamptz) - o.occurred_at)::float AS seconds
    FROM onset o JOIN gateways g ON g.id = o.gateway_id
    LEFT JOIN ends e ON e.gateway_id = o.gateway_id AND e.alert_instance_id = o.alert_instance_id
                    AND e.ended_at >= o.occurred_at
)
"""

_LOAD = (
    _SPANS
    + """
SELECT ward, site, gateway, pump, count(*)::int AS onsets,
       count(*) FILTER (WHERE priority = 'high')::int AS high_priority,
       coalesce(sum(seconds), 0)::float AS alarm_seconds,
       mode() WITHIN GROUP (ORDER BY condition) AS top_condition
FROM spans GROUP BY ward, site, gateway, pump ORDER BY onsets DESC, ward, pump
"""
)

_CONDITIONS = (
    _SPANS
    + """
SELECT ward, condition, count(*)::int AS onsets, coalesce(sum(seconds), 0)::float AS alarm_seconds
FROM spans GROUP BY ward, condition ORDER BY ward, onsets DESC, condition
"""
)


def _window(days: float, now: datetime | None) -> dict[str, datetime]:
    t = now_or(now)
    return {"since": t - timedelta(days=days), "until": t}


def alarm_load(conn: psycopg.Connection, *, days: float = 30, now: datetime | None = None) -> list[AlarmLoadRow]:
    """Per pump (with its ward): alarm onsets, high-priority onsets, alarm time, most frequent condition."""
    return fetch(conn, AlarmLoadRow, _LOAD, _window(days, now))


def alarm_conditions(
    conn: psycopg.Connection, *, days: float = 30, now: datetime | None = None
) -> list[AlarmConditionRow]:
    """Per ward, each alarm condition with its onsets and alarm time, most frequent first."""
    return fetch(conn, AlarmConditionRow, _CONDITIONS, _window(days, now))
