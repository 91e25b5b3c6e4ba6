"""The append-only audit trail in the gateway database (the outbox file, table ``audit``).

Who writes: identity changes (gateway/identity), configuration changes at start-up and
SIGHUP (gateway/daemon), operator actions on the outbox (``pumpgw outbox requeue/purge``),
and -- through an ``audit`` callable of the same shape -- drug-library changes.

``append`` is synchronous and commits at once with ``synchronous=FULL`` on its own
connection: audit rows are rare (changes, not polls) and a row must be on disk before the
action it records is reported as done. ``BEGIN IMMEDIATE`` serialises writers (the daemon
and an operator's CLI) so two appends can never chain to the same predecessor.

Rows are never updated (a trigger refuses it). Old rows are deleted only by
:meth:`AuditTrail.apply_retention`, which first appends a checkpoint row so the chain stays
verifiable (see :mod:`gateway.audit.chain`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from gateway.audit.chain import GENESIS, RETENTION_KIND, AuditRow, Finding, canonical, row_hash, verify_rows
from gateway.errors import PumpgwError
from gateway.outbox import schema

DEFAULT_RETENTION_DAYS = 3650  # MDR Art. 10(8): ten years is what manufacturers must keep
MIN_RETENTION_DAYS = 365  # never below one year
_COLUMNS = "seq, at, kind, subject, actor, detail, prev_hash, hash"


class AuditError(PumpgwError):
    """The audit trail cannot be written or read (the database is locked, full, missing)."""


class AuditSink(Protocol):
    """What a component that records audit rows needs (issue 18's library, the CLI ...)."""

    def append(self, kind: str, subject: str, detail: dict, actor: str = "pumpgw") -> None: ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _row(values: tuple) -> AuditRow:
    return AuditRow(*values)


class AuditTrail:
    """One gateway database's audit table. Open with :meth:`open` (writer) or :meth:`open_readonly`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, writable: bool) -> None:
        self._conn = conn
        self.path = path
        self.writable = writable

    @classmethod
    def open(cls, path: Path) -> AuditTrail:
        """Open (creating or migrating the database if needed) for appending."""
        conn = schema.connect(Path(path))
        conn.execute("PRAGMA busy_timeout=5000")  # an operator's append may wait for the daemon's
        return cls(conn, Path(path), writable=True)

    @classmethod
    def open_readonly(cls, path: Path) -> AuditTrail:
        """Open without any write access (``mode=ro``): for operators while the daemon runs."""
        path = Path(path)
        if not path.exists():
            raise AuditError(f"gateway database {path} does not exist")
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0, isolation_level=None)
            conn.execute("SELECT 1 FROM audit LIMIT 1")
        except sqlite3.Error as exc:
            raise AuditError(f"gateway database {path}: cannot read the audit trail ({exc})") from None
        return cls(conn, path, writable=False)

    def close(self) -> None:
        self._conn.close()

    # -- writing ------------------------------------------------------------------------

    def append(self, kind: str, subject: str, detail: dict, actor: str = "pumpgw") -> None:
        """Append one row, chained to the last one, and commit it durably."""
        if not self.writable:
            raise AuditError(f"audit trail {self.path} is open read-only")
        self._append(kind, subject, detail, actor)

    def _append(self, kind: str, subject: str, detail: Mapping[str, Any], actor: str, *, begun: bool = False) -> None:
        conn = self._conn
        try:
            if not begun:
                conn.execute("BEGIN IMMEDIATE")
            try:
                last = conn.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                seq_row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='audit'").fetchone()
                prev = last[0] if last else GENESIS
                seq = (seq_row[0] if seq_row else 0) + 1
                at, text = _now(), canonical(detail)
                digest = row_hash(prev, seq, at, kind, subject, actor, text)
                conn.execute(
                    f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, at, kind, subject, actor, text, prev, digest),
                )
                if not begun:
                    conn.execute("COMMIT")
            except BaseException:
                if not begun:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise AuditError(f"audit row {kind!r} for {subject!r} not written to {self.path}: {exc}") from exc

    def append_in(self, kind: str, subject: str, detail: Mapping[str, Any], actor: str = "pumpgw") -> None:
        """Append inside a transaction the caller began on :attr:`connection` (same commit)."""
        self._append(kind, subject, detail, actor, begun=True)

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    def apply_retention(self, retention_days: int, *, now: datetime | None = None) -> int:
        """Delete rows older than ``retention_days`` after a checkpoint row; returns rows deleted."""
        if retention_days < MIN_RETENTION_DAYS:
            raise AuditError(f"audit retention {retention_days} days is below the minimum of {MIN_RETENTION_DAYS}")
        cutoff = ((now or datetime.now(UTC)) - timedelta(days=retention_days)).isoformat(timespec="microseconds")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            old = conn.execute(
                "SELECT seq, hash FROM audit WHERE at < ? ORDER BY seq DESC LIMIT 1", (cutoff,)
            ).fetchone()
            if old is None:
                conn.execute("ROLLBACK")
                return 0
            anchor_seq, anchor_hash = old
            count = conn.execute("SELECT COUNT(*) FROM audit WHERE seq <= ?", (anchor_seq,)).fetchone()[0]
            self._append(
                RETENTION_KIND,
                "audit",
                {
                    "anchor_seq": anchor_seq,
                    "anchor_hash": anchor_hash,
                    "deleted": count,
                    "older_than": cutoff,
                    "retention_days": retention_days,
                },
                "pumpgw",
                begun=True,
            )
            conn.execute("DELETE FROM audit WHERE seq <= ?", (anchor_seq,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return count

    # -- reading ------------------------------------------------------------------------

    def rows(
        self, *, since: str | None = None, subject: str | None = None, kind: str | None = None, limit: int | None = None
    ) -> list[AuditRow]:
        where, args = [], []
        if since:
            where.append("at >= ?")
            args.append(since)
        if subject:
            where.append("subject = ?")
            args.append(subject)
        if kind:
            # "identity" selects identity.*; an exact kind selects itself
            where.append("(kind = ? OR kind LIKE ? ESCAPE '\\')")
            args += [kind, kind.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%"]
        sql = f"SELECT {_COLUMNS} FROM audit" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_row(r) for r in self._conn.execute(sql, args)]

    def verify(self) -> list[Finding]:
        """Walk the whole chain; every break found (empty: intact)."""
        self._conn.execute("BEGIN")  # one consistent snapshot even while the daemon appends
        try:
            rows = [_row(r) for r in self._conn.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY seq")]
            seq_row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name='audit'").fetchone()
        finally:
            self._conn.execute("COMMIT")
        return verify_rows(rows, highest_seq=seq_row[0] if seq_row else 0)
