"""The signed release in force, kept durably in the gateway's database (outbox file).

Why durable: "newer than the one in force" must hold across restarts, or a broker that still
retains an old release (or an old file in the drop folder) would roll a restarted gateway
back. The release itself (library and signature bytes) is kept too, so a restarted gateway
puts the same library in force before any network is up, re-verifying it against the trust
list of the moment (a revoked key is noticed at start-up).

A separate SQLite connection on the outbox file (WAL allows it); commits are
``synchronous=FULL`` (design.md §2 inv. 2: what was applied must not be forgotten on power loss).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from gateway.outbox.schema import connect, set_synchronous


@dataclass(frozen=True, slots=True)
class StoredRelease:
    serial: int
    version: str
    sha256: str
    signer_key_id: str
    applied_at: str
    source: str
    library: bytes
    signature: bytes


class ReleaseState:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection = connect(self.path)
        set_synchronous(self._conn, "FULL")

    def load(self) -> StoredRelease | None:
        row = self._conn.execute(
            "SELECT serial, version, sha256, signer_key_id, applied_at, source, library, signature"
            " FROM library_in_force WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        serial, version, sha256, key_id, applied_at, source, library, signature = row
        return StoredRelease(
            int(serial),
            str(version),
            str(sha256),
            str(key_id),
            str(applied_at),
            str(source),
            bytes(library),
            bytes(signature),
        )

    def save(self, release: StoredRelease) -> None:
        r = release
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "INSERT OR REPLACE INTO library_in_force"
                " (id, serial, version, sha256, signer_key_id, applied_at, source, library, signature)"
                " VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                (r.serial, r.version, r.sha256, r.signer_key_id, r.applied_at, r.source, r.library, r.signature),
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()
