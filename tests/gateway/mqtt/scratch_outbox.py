"""A real outbox for the MQTT tests: the production SQLite code path in a throw-away folder.

The MQTT sender is tested against the outbox it runs on in the daemon (no test double of our
own component, design.md §3); the read-backs below are what the tests assert on.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from gateway.outbox import Outbox


class ScratchOutbox(Outbox):
    _folder: tempfile.TemporaryDirectory[str]

    def rows(self, sql: str, *args: object) -> list[tuple]:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
            return db.execute(sql, args).fetchall()

    @property
    def delivered(self) -> list[int]:
        """Ids of the delivered messages, in the order of their ids."""
        return [r[0] for r in self.rows("SELECT id FROM messages WHERE state='delivered' ORDER BY id")]

    @property
    def quarantined(self) -> dict[int, str]:
        """Quarantined message id -> the reason recorded with it."""
        return dict(self.rows("SELECT id, reason FROM messages WHERE state='quarantined' ORDER BY id"))

    def pending(self, lane: str | None = None) -> int:
        """Messages not delivered, quarantined or expired yet (pending or in flight)."""
        sql = "SELECT count(*) FROM messages WHERE state IN ('pending', 'in_flight')"
        rows = self.rows(sql + " AND lane=?", lane) if lane is not None else self.rows(sql)
        return rows[0][0]


def scratch_outbox() -> ScratchOutbox:
    """A fresh outbox file; the folder is removed when the outbox object is collected."""
    folder = tempfile.TemporaryDirectory(prefix="pumpgw-mqtt-test-")
    outbox = ScratchOutbox.open(Path(folder.name) / "outbox.db")
    assert isinstance(outbox, ScratchOutbox)
    outbox._folder = folder
    return outbox
