"""The outbox's one writing connection: its durability level, SQLite errors turned into the
outbox's own, and the full-disk degraded mode.

Full disk (a degraded mode, not a loss): a write that fails for lack of space releases the
reserve file (:mod:`gateway.outbox.reserve`), caps the byte budget at what the outbox holds
now -- periodic observations are thinned to make room, so alarms and events still commit --
and is retried once. One ERROR and one alert when this starts; further failures are counted
and reported with the recovery, which is checked after every commit and every few seconds:
as soon as the file system has room for the reserve again it is re-created and the cap
lifted. A write that still fails raises :class:`OutboxFull` (the caller retries).

Any other SQLite error rolls the transaction back and raises :class:`OutboxBusy`
(nothing of it was recorded; the caller may retry): no ``sqlite3`` exception crosses the
outbox boundary.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gateway.log import get_logger
from gateway.outbox import budget, schema
from gateway.outbox.checkpoint import Checkpointer
from gateway.outbox.errors import OutboxBusy, OutboxFull
from gateway.outbox.reserve import DiskReserve, free_bytes, is_disk_full

log = get_logger("pumpgw.outbox")

T = TypeVar("T")
AlertHook = Callable[[str, dict], None]


class Writer:
    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        *,
        max_bytes: int,
        reserve: DiskReserve | None,
        alert: AlertHook,
        checkpointer: Checkpointer | None,
    ) -> None:
        self.path = path
        self.conn = conn
        self.max_bytes = max_bytes
        self.reserve = reserve
        self.checkpointer = checkpointer
        self._alert = alert
        self._sync = "FULL"  # schema.connect leaves the connection at FULL
        self.disk_full = False  # degraded: no room on the file system (reserve released)
        self.disk_cap: int | None = None  # budget cap while degraded: no growth
        self.full_failures = 0  # writes refused while degraded (reported at recovery)
        # the lowest row id committed but not yet fsynced (gateway.outbox.groupcommit): claims
        # stop short of it, so nothing is sent that a power loss could still take back
        self.unsynced_from: int | None = None
        self._wal = f"{path}-wal"
        self._wal_limit = 0
        self._changes = 0  # the connection's total_changes at the last look
        self._wal_size = 0  # the WAL file's size at the last look (its growth calls for a catch-up)
        self._configure_wal()

    @property
    def budget_bytes(self) -> int:
        """The byte budget in force: ``max_bytes``, or less while the disk is full."""
        return self.max_bytes if self.disk_cap is None else min(self.max_bytes, self.disk_cap)

    def set_sync(self, level: str) -> None:
        if self._sync != level:
            schema.set_synchronous(self.conn, level)
            self._sync = level

    def run(self, action: str, fn: Callable[..., T], *args: object) -> T:
        """Run one write (``action`` names it in errors); on "disk full" enter the degraded
        mode and retry it once. The checkpoint thread is told after each success that wrote to the WAL."""
        try:
            result = self._attempt(action, fn, *args)
        except _DiskFull as exc:
            if not self.disk_full:
                self.enter_disk_full(exc.why)
            try:
                result = self._attempt(action, fn, *args)
            except _DiskFull:
                self.full_failures += 1
                log.debug("outbox write refused, disk still full", path=str(self.path), refused=self.full_failures)
                raise OutboxFull(str(self.path)) from None
        if self.checkpointer is not None and not self.disk_full:
            changes = self.conn.total_changes
            if changes != self._changes:  # nothing went to the WAL otherwise (a delivery journal line)
                self._changes = changes
                self.checkpointer.wrote()  # waking the thread for nothing cost ~5 us a delivery
                self._catch_up()
        return result

    def _catch_up(self) -> None:
        """Let the WAL restart: the thread's checkpoints never catch up with a writer that
        commits while they run (the WAL restarts only once every frame is in the database),
        so when the WAL *file grows* past half of ``journal_size_limit`` the loop runs one
        PASSIVE checkpoint itself. The thread has copied and synced nearly every page by then:
        this copies the last few, and the next commit starts the WAL from its beginning.

        Growth, not size: a restarted WAL keeps its file (cut back to the limit at most), so
        the file stays past half the limit while its content starts again from nothing. The
        size alone made the loop checkpoint -- and sync the database file -- after every
        commit once the file had been that large once (17 us of the loop's CPU per MQTT event
        and a sync on the loop, measured in bench/mqtt_bench.py). The file grows only when the
        content outgrows it, which is exactly when the thread is not keeping up. Half, not all
        of the limit: a thread starved of CPU must not let the WAL grow past the limit before
        the loop steps in (a small budget's limit is a quarter of the budget; the file must
        stay within 1.2x of it)."""
        try:
            size = os.path.getsize(self._wal)
        except OSError:
            return
        grew, self._wal_size = size > self._wal_size, size
        if not grew or size <= self._wal_limit // 2:
            return
        try:
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            pass  # the thread's checkpoint is running: the next growth tries again

    def read(self, action: str, fn: Callable[..., T], *args: object) -> T:
        """Run a read on the writing connection; a SQLite error becomes OutboxBusy."""
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            raise OutboxBusy(str(self.path), f"{action}: {type(exc).__name__}: {exc}") from exc

    def _attempt(self, action: str, fn: Callable[..., T], *args: object) -> T:
        try:
            return fn(*args)
        except Exception as exc:
            if is_disk_full(exc):
                self.rollback()
                raise _DiskFull(f"{type(exc).__name__}: {exc}") from None
            if isinstance(exc, (sqlite3.Error, OSError)):  # OSError: the delivery journal
                self.rollback()
                raise OutboxBusy(str(self.path), f"{action}: {type(exc).__name__}: {exc}") from exc
            raise

    def rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def checkpoint_now(self) -> None:
        """Checkpoint and truncate the WAL to nothing, on the loop: after a compaction (once a
        minute at most), a thinning or while the disk is full, when the room matters more than
        a short stall (the thread has copied nearly every page already)."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # a reader holds a snapshot: the next checkpoint does it

    def _configure_wal(self) -> None:
        automatic = self.checkpointer is None or self.disk_full
        budget.configure_wal(self.conn, 0 if self.disk_full else self.max_bytes, automatic=automatic)
        self._wal_limit = self.conn.execute("PRAGMA journal_size_limit").fetchone()[0]

    # -- full disk -------------------------------------------------------------------------

    def enter_disk_full(self, why: str, used_fallback: int = 0) -> None:
        """Degraded mode: release the reserve, cap the budget at the current size; one ERROR."""
        self.disk_full = True
        self.full_failures = 0
        released = self.reserve.release() if self.reserve is not None else False
        try:
            used = budget.used_bytes(self.conn, self.path)
        except sqlite3.Error:
            used = used_fallback
        # From now on the budget is the room the file system has, less headroom kept for the
        # WAL frames of state changes (a delivery must still be recordable) and checkpoints.
        self.disk_cap = used + self.room() - self.headroom
        try:  # a small WAL from now on: every frame of it needs disk space before a checkpoint
            self._configure_wal()
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        details = {
            "path": str(self.path),
            "why": why,
            "reserve_released_bytes": self.reserve.size if released and self.reserve is not None else 0,
            "outbox_bytes": self.disk_cap,
        }
        log.error(
            "outbox: the disk is full; running degraded (alarms and events still commit, "
            "periodic observations are thinned to make room)",
            **details,
        )
        self._alert("outbox_disk_full", details)

    @property
    def headroom(self) -> int:
        return max(256 * 1024, (self.reserve.size if self.reserve is not None else 0) // 2)

    def room(self) -> int:
        try:
            return free_bytes(self.path.parent)
        except OSError:
            return 0

    def check_recovered(self) -> bool:
        """Leave the degraded mode once the file system has room for the reserve again."""
        needed = self.reserve.size if self.reserve is not None else 0
        try:
            room = free_bytes(self.path.parent)
        except OSError:
            return False
        if room < needed + self.headroom:  # room for the reserve and the headroom beside it
            return False
        if self.reserve is not None and not self.reserve.ensure():
            return False
        self.disk_full = False
        self.disk_cap = None
        self._configure_wal()
        log.warning(
            "outbox: disk space available again; reserve restored, degraded mode ended",
            path=str(self.path),
            free_bytes=room,
            writes_refused_meanwhile=self.full_failures,
        )
        return True


class _DiskFull(Exception):
    def __init__(self, why: str) -> None:
        self.why = why
        super().__init__(why)
