"""The web UI's audit trail: logins (good and failed), lock-outs, logouts, admin actions.

A table in the fleet database, append-only and hash-chained like the gateways' audit trail:
each row carries sha256(previous row's hash + this row's content), so a deleted or edited row
breaks the chain (:func:`verify_chain`). Rows are serialised with an advisory lock so the chain
stays linear when several fleet instances log at once. Only user names and client addresses
are stored: never a submitted password, never patient data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

AUDIT_LOCK_KEY = 0x70756D71

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL,
    username    text NOT NULL,
    client      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash   text NOT NULL,
    hash        text NOT NULL
);
CREATE TABLE IF NOT EXISTS web_alert_ack (
    alert_id    bigint PRIMARY KEY,
    acked_by    text NOT NULL,
    acked_at    timestamptz NOT NULL DEFAULT now()
);
"""

GENESIS = "0" * 64


def ensure_schema(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK_KEY,))
        conn.execute(SCHEMA)


def _digest(prev: str, kind: str, user: str, client: str, detail: dict[str, Any]) -> str:
    body = json.dumps([prev, kind, user, client, detail], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def append(conn: psycopg.Connection, kind: str, user: str, client: str, detail: dict[str, Any] | None = None) -> None:
    detail = detail or {}
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK_KEY,))
        row = conn.execute("SELECT hash FROM web_audit ORDER BY id DESC LIMIT 1").fetchone()
        prev = row[0] if row else GENESIS
        conn.execute(
            "INSERT INTO web_audit (kind, username, client, detail, prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                kind,
                user[:64],
                client[:64],
                json.dumps(detail),
                prev,
                _digest(prev, kind, user[:64], client[:64], detail),
            ),
        )


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    kind: str
    username: str
    client: str
    detail: dict[str, Any]


def recent(conn: psycopg.Connection, limit: int = 200) -> list[AuditRow]:
    rows = conn.execute(
        "SELECT id, at, kind, username, client, detail FROM web_audit ORDER BY id DESC LIMIT %s", (limit,)
    ).fetchall()
    return [AuditRow(*r) for r in rows]


def verify_chain(conn: psycopg.Connection) -> int | None:
    """The id of the first row whose hash does not follow from its predecessor, or None."""
    prev = GENESIS
    for rid, kind, user, client, detail, prev_hash, digest in conn.execute(
        "SELECT id, kind, username, client, detail, prev_hash, hash FROM web_audit ORDER BY id"
    ):
        if prev_hash != prev or digest != _digest(prev, kind, user, client, detail):
            return int(rid)
        prev = digest
    return None
