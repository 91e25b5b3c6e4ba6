"""No sqlite3 exception crosses the outbox boundary: a file locked by another writer (the
operator CLI in the middle of a requeue, here a real second connection) or a damaged table
gives the outbox's own OutboxBusy, and nothing of the failed operation is recorded."""

from __future__ import annotations

import sqlite3

import pytest

from gateway.errors import RetryLater
from gateway.outbox import NewMessage, Outbox, OutboxBusy, OutboxError, Outcome, schema


async def locked_outbox(tmp_path) -> tuple[Outbox, sqlite3.Connection, list]:
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    for i in range(4):
        await ob.enqueue(lane="doc", kind="pcd01", control_id=f"C{i}", payload=b"MSH|x", ttl_s=3600)
    held = await ob.claim_many("doc", 2)
    ob._conn.execute("PRAGMA busy_timeout=50")  # fail fast (the daemon waits up to 1 s)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    return ob, other, held


async def test_every_write_on_a_locked_file_raises_the_outboxs_own_error(tmp_path):
    ob, other, held = await locked_outbox(tmp_path)
    attempts = {
        "enqueue": lambda: ob.enqueue(lane="doc", kind="pcd01", control_id="N", payload=b"x", ttl_s=60),
        "commit": lambda: ob.commit([NewMessage("am", "pcd04", "A", b"x", 60)]),
        "claim": lambda: ob.claim("doc"),
        "claim_many": lambda: ob.claim_many("doc", 5),
        "finish": lambda: ob.finish(held[0], "quarantined", reason="AE", claim_next=False),
        "finish_many": lambda: ob.finish_many([Outcome(held[0], "quarantined", reason="AE")]),
        "reset_lane": lambda: ob.reset_lane("doc"),
        "forget_receipts": lambda: ob.forget_receipts(0),
    }
    for name, attempt in attempts.items():
        with pytest.raises(OutboxBusy) as info:
            await attempt()
        assert isinstance(info.value, RetryLater), name  # the caller's next action: retry
        assert type(info.value.__cause__) is sqlite3.OperationalError, name  # the raw one, kept for DEBUG
    other.execute("ROLLBACK")
    other.close()
    # nothing was recorded meanwhile, and the outbox works again once the lock is gone
    stats = ob.stats()["doc"]
    assert (stats.pending, stats.in_flight, stats.quarantined) == (2, 2, 0)
    await ob.finish_many([Outcome(held[0], "quarantined", reason="AE")])
    assert ob.stats()["doc"].quarantined == 1
    ob.close()


async def test_a_read_of_a_damaged_table_raises_the_outboxs_own_error(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    with sqlite3.connect(path) as other:
        other.execute("DROP TABLE inbound_receipts")
        other.execute("DROP TABLE pump_state")
    with pytest.raises(OutboxError):
        ob.receipt("src", "sender", "C1")
    with pytest.raises(OutboxBusy):
        ob.load_states()
    ob.close()


def test_a_python_whose_sqlite_is_too_old_gets_a_named_error_not_a_syntax_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(OutboxError, match=r"SQLite is 3\.31\.1; the outbox needs 3\.35\.0 or newer"):
        schema.connect(tmp_path / "o.db")
    assert not (tmp_path / "o.db").exists()
