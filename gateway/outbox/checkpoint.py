"""WAL checkpoints on a worker thread, so no commit on the event loop pays for one.

SQLite's automatic checkpoint runs inside the commit that crosses ``wal_autocheckpoint``
pages: up to 1,000 pages copied into the database file and synced, on the thread that
committed -- the event loop (52-120 ms stalls measured, issue 20). The outbox's connection
therefore runs with ``wal_autocheckpoint=0`` while this thread, on its own connection, runs a
PASSIVE checkpoint at most every ``interval_s`` after the loop said it wrote something.
PASSIVE never waits for readers or writers, so it never holds up a commit on the loop, and
SQLite releases the GIL while it copies and syncs. The WAL restarts from its beginning at the
first commit after a checkpoint that caught up and is cut back to ``journal_size_limit`` then,
so it stays about as small as with the automatic checkpoint (gateway.outbox.budget).

While the disk is full the outbox goes back to the automatic checkpoint (every WAL frame needs
room before it is checkpointed; the store's degraded mode wants it small at once).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from gateway.log import get_logger

log = get_logger("pumpgw.outbox")

INTERVAL_S = 0.1  # at most ten checkpoints a second: ~1 MiB of WAL at a full-speed drain


class Checkpointer:
    """One thread, one connection; :meth:`wrote` is cheap enough to call after every commit."""

    def __init__(self, path: Path, *, interval_s: float = INTERVAL_S) -> None:
        self.path = path
        self.interval_s = interval_s
        self.checkpoints = 0  # PASSIVE checkpoints run (tests, diagnosis)
        self.failures = 0
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pumpgw-outbox-checkpoint", daemon=True)
            self._thread.start()

    def wrote(self) -> None:
        """The loop committed: a checkpoint is due within ``interval_s``."""
        self._dirty.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Run a last checkpoint and end the thread (a checkpoint in progress is finished)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self._dirty.set()
        thread.join(timeout_s)

    def _run(self) -> None:
        # (PASSIVE checkpoints never wait on the busy timeout; setting up may, briefly)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=1.0)
        try:
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:  # the loop's catch-up checkpoints still bound the WAL
            log.error(
                "outbox checkpoint thread cannot use the file",
                path=str(self.path),
                error=str(exc),
                error_type=type(exc).__name__,
            )
            conn.close()
            return
        try:
            while not self._stop.is_set():
                self._dirty.wait()
                self._dirty.clear()
                self._checkpoint(conn)
                self._stop.wait(self.interval_s)
            self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.checkpoints += 1
        except sqlite3.Error as exc:  # e.g. the disk is full: the store's degraded mode handles it
            self.failures += 1
            log.log(
                logging.WARNING if self.failures == 1 else logging.DEBUG,
                "outbox checkpoint failed",
                error=str(exc),
                error_type=type(exc).__name__,
                failures=self.failures,
            )
