"""Opening the outbox file: pragmas, integrity check, schema migrations.

Discipline after zigpy's ``appdb.py``: ``PRAGMA quick_check`` on open, ``user_version``
migrations applied in one transaction, named errors for a corrupt file or a newer schema.
Journal mode is WAL. Durability (design.md §2 inv. 2) is chosen per commit by the caller
with :func:`set_synchronous`: FULL for commits that *produce* messages (enqueue, operator
actions), NORMAL for state transitions whose loss on power failure only causes a resend of
identical bytes (see docs/integration-engineer.md, "Delivery guarantees").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.outbox.errors import OutboxCorrupt, OutboxFull, OutboxSchemaError
from gateway.outbox.reserve import is_disk_full

SCHEMA_VERSION = 1

# Index = version reached after applying the statements.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,   -- AUTOINCREMENT: ids never reused, so order holds
            lane TEXT NOT NULL,                     -- destination *name*, not address
            kind TEXT NOT NULL,                     -- pcd01 | pcd04 | pcd10 | ...
            priority TEXT NOT NULL DEFAULT 'normal',
            control_id TEXT NOT NULL,               -- MSH-10, fixed at enqueue
            payload BLOB NOT NULL,                  -- exact bytes sent on every attempt
            size INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending','in_flight','delivered','quarantined','expired')),
            created_at REAL NOT NULL,               -- wall clock (survives restarts)
            ttl_s REAL NOT NULL,
            expires_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            state_at REAL NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            ack_text TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX messages_lane_state ON messages (lane, state, id)",
        "CREATE INDEX messages_state_at ON messages (state, state_at)",
        """CREATE TABLE lane_counters (
            lane TEXT PRIMARY KEY,
            thinned INTEGER NOT NULL DEFAULT 0,
            thinned_bytes INTEGER NOT NULL DEFAULT 0
        )""",
    ),
}


def connect(path: Path, *, create: bool = True) -> sqlite3.Connection:
    """Open (and if needed create or migrate) the outbox file; raise a named error if bad."""
    path = Path(path)
    if not create and not path.exists():
        raise FileNotFoundError(f"outbox {path} does not exist")
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    # A short busy timeout: the outbox runs on the event loop, and a lock held by an operator's
    # `pumpgw outbox requeue` must not freeze polling and the watchdog for long.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=1.0)
    try:
        _check(conn, path)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxCorrupt(str(path), f"cannot enable WAL journal (got journal_mode={mode})")
        set_synchronous(conn, "FULL")
        _migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if is_disk_full(exc):  # not corrupt: no room for the WAL or a migration
            raise OutboxFull(str(path), str(exc)) from None
        raise OutboxCorrupt(str(path), str(exc)) from None
    except BaseException:
        conn.close()
        raise
    return conn


def set_synchronous(conn: sqlite3.Connection, level: str) -> None:
    conn.execute(f"PRAGMA synchronous={level}")


def _check(conn: sqlite3.Connection, path: Path) -> None:
    rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
    if rows != ["ok"]:
        raise OutboxCorrupt(str(path), "; ".join(map(str, rows[:5])))


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise OutboxSchemaError(str(path), version, SCHEMA_VERSION)
    if version == 0:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        if tables:
            raise OutboxSchemaError(str(path), f"0 with foreign tables {tables[:5]}", SCHEMA_VERSION)
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
