"""A real outbox for the MQTT tests: the production SQLite code path in a throw-away folder.

The MQTT sender is tested against the outbox it runs on in the daemon (no test double of our
own component, design.md §3); the read-backs below are what the tests assert on. A delivery
may still be in the outbox's delivery journal rather than in its row (gateway.outbox.journal):
the read-backs count it as delivered, as the outbox's own figures do.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from gateway.outbox import Outbox, journal


class ScratchOutbox(Outbox):
    _folder: tempfile.TemporaryDirectory[str]

    def rows(self, sql: str, *args: object) -> list[tuple]:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
            return db.execute(sql, args).fetchall()

    def _journaled(self) -> set[int]:
        return {row[4] for row in journal.read(self.path)}

    def states(self, lane: str) -> dict[str, str]:
        """control_id -> state of the lane's messages, in the order of their ids."""
        journaled = self._journaled()
        rows = self.rows("SELECT id, control_id, state FROM messages WHERE lane=? ORDER BY id", lane)
        return {cid: "delivered" if msg_id in journaled else state for msg_id, cid, state in rows}

    @property
    def delivered(self) -> list[int]:
        """Ids of the delivered messages, in the order of their ids."""
        rows = self.rows("SELECT id FROM messages WHERE state='delivered'")
        return sorted({r[0] for r in rows} | self._journaled())

    @property
    def quarantined(self) -> dict[int, str]:
        """Quarantined message id -> the reason recorded with it."""
        return dict(self.rows("SELECT id, reason FROM messages WHERE state='quarantined' ORDER BY id"))

    def pending(self, lane: str | None = None) -> int:
        """Messages not delivered, quarantined or expired yet (pending or in flight)."""
        sql = "SELECT id FROM messages WHERE state IN ('pending', 'in_flight')"
        rows = self.rows(sql + " AND lane=?", lane) if lane is not None else self.rows(sql)
        return len({r[0] for r in rows} - self._journaled())


def scratch_outbox() -> ScratchOutbox:
    """A fresh outbox file; the folder is removed when the outbox object is collected."""
    folder = tempfile.TemporaryDirectory(prefix="pumpgw-mqtt-test-")
    outbox = ScratchOutbox.open(Path(folder.name) / "outbox.db")
    assert isinstance(outbox, ScratchOutbox)
    outbox._folder = folder
    return outbox
