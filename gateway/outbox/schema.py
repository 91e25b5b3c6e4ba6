"""Opening the outbox file: pragmas, integrity check, schema migrations.

Discipline after zigpy's ``appdb.py``: ``user_version`` migrations applied in one
transaction, named errors for a corrupt file or a newer schema. ``PRAGMA quick_check``
reads every page (6.8 s for a 4 GB outbox warm, minutes cold), so it is not part of opening
the daemon's outbox: :func:`integrity_check` runs after READY on a worker thread and on
demand (``pumpgw outbox check``); see docs/operations.md, "Outbox integrity check".
Journal mode is WAL. Durability (design.md §2 inv. 2) is chosen per commit by the caller
with :func:`set_synchronous`: FULL (or NORMAL plus an fsync of the WAL before the caller is
answered, gateway/outbox/groupcommit.py) for commits that *produce* messages (enqueue, operator
actions), NORMAL for state transitions whose loss on power failure only causes a resend of
identical bytes (see docs/integration-engineer.md, "Delivery guarantees").
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from gateway.fileperms import create_private, tighten
from gateway.outbox.errors import OutboxAccessError, OutboxCorrupt, OutboxError, OutboxFull, OutboxSchemaError
from gateway.outbox.reserve import is_disk_full

# Index = version reached after applying the statements. Each issue adds its own numbered,
# additive step (docs/architecture.md); absent numbers are skipped, so steps merge in any order.
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
    # 2 (issue 12): the clinical state each pump's messages told the outside world (active alarms
    # with their onset id, running infusions, communication state, identity, last PCD-01),
    # written in the same transaction as those messages so a restart continues the story
    # (design.md §2 inv. 9). One row per pump; ``state`` is versioned JSON owned by
    # gateway/events/state_codec.py. No reference to other tables.
    2: (
        """CREATE TABLE pump_state (
            pump_id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,               -- format version of ``state``
            state TEXT NOT NULL,                    -- JSON
            updated_at REAL NOT NULL                -- wall clock of the commit
        )""",
    ),
    # 3: traceability (gateway/identity, gateway/audit): per-slot identity, devices seen, and
    # the append-only, hash-chained audit trail. Independent of every other step's tables.
    3: (
        """CREATE TABLE pump_identity (
            pump_id TEXT PRIMARY KEY,               -- the configured slot (link, address/pillar-slot, bed)
            manufacturer TEXT, model TEXT, serial_number TEXT, firmware TEXT,
            drug_library_version TEXT, udi TEXT,
            asset_tag TEXT,                         -- from the configuration, as last seen
            asset_serial TEXT,                      -- the serial the asset tag was registered with
            first_seen TEXT NOT NULL,               -- this device in this slot (ISO 8601, UTC)
            last_seen TEXT NOT NULL,
            unreadable_since TEXT                   -- identity could not be read since (NULL: readable)
        )""",
        """CREATE TABLE pump_device (
            manufacturer TEXT NOT NULL,
            serial_number TEXT NOT NULL,
            model TEXT,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            last_pump_id TEXT NOT NULL,
            PRIMARY KEY (manufacturer, serial_number)
        )""",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a deleted tail stays visible in sqlite_sequence
            at TEXT NOT NULL,                       -- ISO 8601 UTC, microseconds
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            actor TEXT NOT NULL,
            detail TEXT NOT NULL,                   -- canonical JSON (sorted keys, no spaces)
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX audit_at ON audit (at)",
        "CREATE INDEX audit_subject ON audit (subject, seq)",
        # Rows are never updated: the database refuses it (a hand edit has to drop this
        # trigger first, and verify() still finds the edit through the chain).
        """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END""",
    ),
    # 5 (issue 18): the signed drug-library release in force, so a restart neither forgets it
    # nor accepts an older one (gateway/druglib/state.py). One row at most.
    5: (
        """CREATE TABLE library_in_force (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            serial INTEGER NOT NULL,                -- release order from the signed metadata
            version TEXT NOT NULL,
            sha256 TEXT NOT NULL,                   -- of the canonical library bytes
            signer_key_id TEXT NOT NULL,
            applied_at TEXT NOT NULL,               -- ISO 8601 with offset
            source TEXT NOT NULL,                   -- mqtt | watch_dir | file | restart
            library BLOB NOT NULL,                  -- the library file as received
            signature BLOB NOT NULL                 -- its detached signature file
        )""",
    ),
    # 9 (issue 20): per (lane, state) message count and payload bytes, kept by triggers in the
    # very transaction that changes ``messages`` (whichever process: daemon or operator CLI),
    # so start-up, maintenance and ``pumpgw outbox stats`` read a few rows instead of
    # summing the whole table (1M rows: 2.2 s warm). The one full scan is this upgrade.
    9: (
        """CREATE TABLE message_totals (
            lane TEXT NOT NULL,
            state TEXT NOT NULL,
            count INTEGER NOT NULL,
            bytes INTEGER NOT NULL,                 -- SUM(size) of the rows in this lane and state
            PRIMARY KEY (lane, state)
        ) WITHOUT ROWID""",
        """INSERT INTO message_totals (lane, state, count, bytes)
           SELECT lane, state, COUNT(*), COALESCE(SUM(size), 0) FROM messages GROUP BY lane, state""",
        """CREATE TRIGGER messages_totals_insert AFTER INSERT ON messages BEGIN
             INSERT INTO message_totals (lane, state, count, bytes) VALUES (new.lane, new.state, 1, new.size)
             ON CONFLICT (lane, state) DO UPDATE SET count = count + 1, bytes = bytes + excluded.bytes;
           END""",
        """CREATE TRIGGER messages_totals_delete AFTER DELETE ON messages BEGIN
             UPDATE message_totals SET count = count - 1, bytes = bytes - old.size
             WHERE lane = old.lane AND state = old.state;
           END""",
        """CREATE TRIGGER messages_totals_update AFTER UPDATE OF lane, state, size ON messages
           WHEN old.lane IS NOT new.lane OR old.state IS NOT new.state OR old.size IS NOT new.size BEGIN
             UPDATE message_totals SET count = count - 1, bytes = bytes - old.size
             WHERE lane = old.lane AND state = old.state;
             INSERT INTO message_totals (lane, state, count, bytes) VALUES (new.lane, new.state, 1, new.size)
             ON CONFLICT (lane, state) DO UPDATE SET count = count + 1, bytes = bytes + excluded.bytes;
           END""",
    ),
    # 8 (issue 13): inbound messages from vendor-server sources (gateway/sources) already
    # committed, written in the transaction of what they caused: a resend is acknowledged and
    # ignored, a reused control id with other content refused. No reference to other tables.
    8: (
        """CREATE TABLE inbound_receipts (
            source TEXT NOT NULL,                   -- [[sources]] name
            sender TEXT NOT NULL,                   -- MSH-3 as received
            control_id TEXT NOT NULL,               -- MSH-10
            digest TEXT NOT NULL,                   -- SHA-256 of the message content
            received_at REAL NOT NULL,              -- wall clock of the commit
            PRIMARY KEY (source, sender, control_id)
        )""",
        "CREATE INDEX inbound_receipts_at ON inbound_receipts (received_at)",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)
MIN_SQLITE = (3, 35, 0)  # UPDATE ... FROM (3.33), INSERT ... RETURNING (3.35): the senders' grouped statements


def connect(path: Path, *, create: bool = True, readonly: bool = False, check: bool = False) -> sqlite3.Connection:
    """Open (and if needed create or migrate) the outbox file; raise a named error if bad.

    ``readonly`` opens it for reading only (``pumpgw outbox stats/list/show/check``): no WAL
    switch, no migration, works for an operator who may read but not write the file. A
    permission problem raises :class:`OutboxAccessError`, never "corrupt" -- the advice to
    move a corrupt file aside would strand the queue if the file is merely unreadable.
    ``check`` also runs ``PRAGMA quick_check`` first (a full read of the file: never on the
    daemon's start-up path, see the module docstring).
    """
    path = Path(path)
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise OutboxError(
            f"outbox {path}: this Python's SQLite is {sqlite3.sqlite_version}; the outbox needs "
            f"{'.'.join(map(str, MIN_SQLITE))} or newer (UPDATE ... FROM, INSERT ... RETURNING)"
        )
    if not create and not path.exists():
        raise FileNotFoundError(f"outbox {path} does not exist")
    _check_access(path, write=not readonly)
    if readonly:
        return _connect_readonly(path)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        create_private(path)  # 0640 whatever the umask: the file holds raw HL7 (patient data)
    # A short busy timeout: the outbox runs on the event loop, and a lock held by an operator's
    # `pumpgw outbox requeue` must not freeze polling and the watchdog for long.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=1.0)
    try:
        if check:
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
        if isinstance(exc, sqlite3.OperationalError) and _is_access_problem(exc):
            raise OutboxAccessError(str(path), str(exc), write=True) from None
        raise OutboxCorrupt(str(path), str(exc)) from None
    except BaseException:
        conn.close()
        raise
    for suffix in ("", "-wal", "-shm"):  # SQLite gives -wal/-shm the database's mode; a
        tighten(Path(f"{path}{suffix}"))  # file from an older pumpgw may still be 0644
    return conn


def _connect_readonly(path: Path) -> sqlite3.Connection:
    try:
        return _open_readonly(path, "mode=ro")
    except OutboxAccessError:
        # A WAL database read without the daemon: SQLite wants to create -shm, which a
        # read-only operator cannot. With no -wal file every commit is in the main file, so
        # reading it as immutable is exact (a snapshot; the CLI reads once and exits).
        if Path(f"{path}-wal").exists():
            raise
        return _open_readonly(path, "immutable=1")


def _open_readonly(path: Path, flags: str) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?{flags}", uri=True, isolation_level=None, check_same_thread=False)
    try:
        # Not a quick_check (a full read: `pumpgw outbox stats` must answer at once at 1M rows);
        # reading the schema page names a file that is not an outbox at all.
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise OutboxSchemaError(str(path), version, SCHEMA_VERSION)
    except sqlite3.OperationalError as exc:
        conn.close()
        if _is_access_problem(exc):
            raise OutboxAccessError(str(path), str(exc), write=False) from None
        raise OutboxCorrupt(str(path), str(exc)) from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise OutboxCorrupt(str(path), str(exc)) from None
    except BaseException:
        conn.close()
        raise
    return conn


def migration_pending(path: Path) -> bool:
    """Whether opening ``path`` will run a schema step (an upgrade may read every row once,
    e.g. step 9 counting the totals). Reads the header only."""
    path = Path(path)
    if not path.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return False  # connect() names the problem
    return 0 < version < SCHEMA_VERSION


def _check_access(path: Path, *, write: bool) -> None:
    """Name a permission problem before SQLite reports it as an unusable database."""
    if path.exists():
        if not os.access(path, os.R_OK):
            raise OutboxAccessError(str(path), "permission denied (cannot read the file)", write=write)
        if write and not os.access(path, os.W_OK):
            raise OutboxAccessError(str(path), "permission denied (cannot write the file)", write=True)
        # WAL needs to create or write path-wal and path-shm next to it.
        if write and not os.access(path.parent, os.W_OK | os.X_OK):
            raise OutboxAccessError(str(path), f"permission denied (cannot write in {path.parent})", write=True)
        for suffix in ("-wal", "-shm"):
            side = Path(f"{path}{suffix}")
            if side.exists() and not os.access(side, os.R_OK | (os.W_OK if write else 0)):
                raise OutboxAccessError(str(path), f"permission denied on {side.name}", write=write)


def _is_access_problem(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("readonly", "read-only", "unable to open", "permission", "access"))


def set_synchronous(conn: sqlite3.Connection, level: str) -> None:
    conn.execute(f"PRAGMA synchronous={level}")


def _check(conn: sqlite3.Connection, path: Path) -> None:
    problems = quick_check(conn)
    if problems:
        raise OutboxCorrupt(str(path), "; ".join(problems[:5]))


def quick_check(conn: sqlite3.Connection, max_errors: int = 20) -> list[str]:
    """``PRAGMA quick_check``: the problems found (empty: the file is sound)."""
    rows = [str(r[0]) for r in conn.execute(f"PRAGMA quick_check({int(max_errors)})").fetchall()]
    return [] if rows == ["ok"] else rows


def integrity_check(path: Path, max_errors: int = 20) -> list[str]:
    """Check the file on its own read-only connection (safe beside the running daemon: WAL
    readers block no writer). Blocking and long (reads every page): call it on a worker
    thread (``asyncio.to_thread``) or from the CLI. Returns the problems found."""
    conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, check_same_thread=False, timeout=10.0)
    try:
        return quick_check(conn, max_errors)
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()


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
        for target in sorted(t for t in MIGRATIONS if t > version):
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
