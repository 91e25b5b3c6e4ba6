"""Shared plumbing of the reports: typed rows from SQL, the ward of a gateway, the time window.

Every report is a plain function ``f(conn, *, ...) -> list[Row]`` over a psycopg connection,
with ``Row`` a frozen dataclass. The JSON API, the CSV exports, the CLI and the web pages
(issue 22) all call the same functions, so a figure means the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg.rows import class_row

T = TypeVar("T")

WARD = "coalesce(g.ward, g.site || '/' || g.gateway)"
"""A gateway serves one ward; before gateways publish ``ward`` the site/gateway stands in."""


def fetch(conn: psycopg.Connection, cls: type[T], query: str, params: Mapping[str, Any] | None = None) -> list[T]:
    with conn.cursor(row_factory=class_row(cls)) as cur:
        cur.execute(query, params or {})
        return cur.fetchall()


def now_or(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)
