"""WAL checkpoints run off the event loop (gateway.outbox.checkpoint): the loop's connection
never checkpoints inside a commit, the thread does, and the WAL stays bounded through a long
drain that commits without pause."""

from __future__ import annotations

import os
import sqlite3
import threading

from gateway.outbox import NewMessage, Outbox, Outcome


async def test_the_loop_connection_leaves_checkpoints_to_the_thread(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    assert ob._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    assert "pumpgw-outbox-checkpoint" in {t.name for t in threading.enumerate()}
    await ob.commit([NewMessage("doc", "pcd01", f"C{i}", b"x" * 200, 60) for i in range(50)])
    checkpointer = ob._checkpointer
    assert checkpointer is not None
    for _ in range(200):  # the thread runs within its interval of a commit
        if checkpointer.checkpoints:
            break
        threading.Event().wait(0.01)
    assert checkpointer.checkpoints >= 1
    thread = checkpointer._thread  # this outbox's own thread (other tests' outboxes may run theirs)
    assert thread is not None and thread.is_alive()
    ob.close()
    thread.join(30)  # close() waits up to 5 s; a loaded disk may take longer for the last checkpoint
    assert not thread.is_alive()


async def test_the_wal_stays_bounded_through_a_drain_that_never_pauses(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path, max_bytes=4 << 20)  # journal_size_limit: 64 pages
    limit = ob._conn.execute("PRAGMA journal_size_limit").fetchone()[0]
    n = 3000
    largest = 0
    for start in range(0, n, 50):  # a commit after every loop turn's worth of messages
        await ob.commit([NewMessage("doc", "pcd01", f"C{i}", b"x" * 200, 600) for i in range(start, start + 50)])
        largest = max(largest, os.path.getsize(f"{path}-wal"))
    while window := await ob.claim_many("doc", 32):
        for msg in window:  # one commit on the rows per outcome, back to back
            await ob.finish_many([Outcome(msg, "quarantined", reason="AE")])
            largest = max(largest, os.path.getsize(f"{path}-wal"))
    # Without a catch-up on the loop the thread never finds the WAL fully checkpointed while
    # commits keep coming: the WAL never restarts and grows by a few pages per commit (85 MB
    # here). With it: the limit plus what commits add while the thread's checkpoint holds the
    # checkpoint lock (the loop's catch-up never waits for it; a few hundred KiB).
    assert largest <= limit + (2 << 20)
    assert ob.stats()["doc"].quarantined == n
    ob.close()


async def test_once_the_wal_has_restarted_commits_that_fit_in_its_file_do_not_checkpoint_on_the_loop(tmp_path):
    # A restarted WAL keeps its file (cut back to journal_size_limit), so the file's size says
    # nothing about its content. Judged by size, every commit after the first large one ran a
    # checkpoint -- and a sync of the database file -- on the event loop.
    path = tmp_path / "o.db"
    ob = Outbox.open(path, max_bytes=4 << 20)  # journal_size_limit: 64 pages (256 KiB)
    limit = ob._conn.execute("PRAGMA journal_size_limit").fetchone()[0]
    await ob.commit([NewMessage("doc", "pcd01", f"B{i}", b"x" * 2000, 600) for i in range(200)])
    assert os.path.getsize(f"{path}-wal") > limit  # one commit larger than the limit
    other = sqlite3.connect(path)  # a checkpoint like the thread's, until all of that commit is copied
    for _ in range(500):  # busy while the thread's own checkpoint runs
        busy, frames, copied = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if not busy and frames == copied:
            break
        threading.Event().wait(0.01)
    other.close()
    assert not busy and frames == copied
    statements: list[str] = []
    ob._conn.set_trace_callback(statements.append)
    for i in range(10):  # a few pages each: they fit in the restarted WAL's file
        await ob.commit([NewMessage("doc", "pcd01", f"S{i}", b"x" * 200, 600)])
    ob._conn.set_trace_callback(None)
    assert limit // 2 < os.path.getsize(f"{path}-wal") <= limit  # restarted, cut back to the limit
    assert [s for s in statements if "wal_checkpoint" in s] == []
    ob.close()


async def test_a_delivery_written_only_to_the_journal_does_not_wake_the_checkpoint_thread(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    await ob.commit([NewMessage("doc", "pcd01", f"C{i}", b"x" * 200, 60) for i in range(10)])
    window = await ob.claim_many("doc", 10)
    checkpointer = ob._checkpointer
    assert checkpointer is not None
    for _ in range(500):  # the thread has taken the claim's wake-up (it clears the flag first)
        if not checkpointer._dirty.is_set():
            break
        threading.Event().wait(0.01)
    threading.Event().wait(0.5)  # ... and finished that checkpoint
    before = checkpointer.checkpoints
    for msg in window[:5]:  # five journal lines, no WAL frame
        ob.delivered(msg, "AA")
    threading.Event().wait(0.5)  # a wake-up would have run a checkpoint by now (interval 0.1 s)
    assert checkpointer.checkpoints == before
    assert not checkpointer._dirty.is_set()
    ob.close()
