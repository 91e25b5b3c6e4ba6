"""Opening the outbox's files before READY: nothing here grows with the backlog.

No integrity check (after READY, :func:`schema.integrity_check`), no byte sum (the totals
table), no compaction (the first maintenance round, in slices); rows an earlier pumpgw left
marked in flight are found through the (state, state_at) index. On a full disk
the reserve file is released to open, rather than not opening at all.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from gateway.outbox import schema
from gateway.outbox.delivery import recover
from gateway.outbox.errors import OutboxBusy, OutboxFull
from gateway.outbox.reserve import DiskReserve, is_disk_full


def open_files(
    path: Path, reserve_bytes: int
) -> tuple[sqlite3.Connection, sqlite3.Connection, int, DiskReserve | None, bool]:
    """(writing connection, reading connection, rows returned to pending, reserve, whether
    the reserve was released to open)."""
    reserve = DiskReserve(path, reserve_bytes) if reserve_bytes > 0 else None
    released = False
    while True:
        try:
            conn, reader, back = _open(path)
            return conn, reader, back, reserve, released
        except Exception as exc:
            if not (isinstance(exc, OutboxFull) or is_disk_full(exc)) or released or reserve is None:
                if is_disk_full(exc) and not isinstance(exc, OutboxFull):
                    raise OutboxFull(str(path), "cannot open the outbox") from None
                if isinstance(exc, (sqlite3.Error, OSError)):  # OSError: the delivery journal
                    raise OutboxBusy(str(path), f"open: {type(exc).__name__}: {exc}") from exc
                raise
            released = reserve.release()
            if not released:
                raise OutboxFull(str(path), "cannot open the outbox and no reserve is left to release") from None


def _open(path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection, int]:
    """Connect (migrating if needed), apply the delivery journal and return in-flight rows
    to pending in one transaction (gateway.outbox.delivery.recover)."""
    conn = schema.connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        back = recover(conn, path, time.time())
        conn.execute("COMMIT")
        reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=10.0)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
        raise
    return conn, reader, back
