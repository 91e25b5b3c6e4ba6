"""The outbox on real SQLite files: durability, states, order per lane, restart, TTL,
byte budget, schema and corruption checks."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time

import pytest

from gateway.outbox import Outbox, OutboxCorrupt, OutboxSchemaError, Outcome
from gateway.outbox.schema import SCHEMA_VERSION


def hl7(cid: str, body: str = "x") -> bytes:
    return f"MSH|^~\\&|PUMPGW|W|EHR|H|20240101000000+0000||ORU^R01^ORU_R01|{cid}|P|2.6\rOBX|1|ST|x||{body}\r".encode()


async def put(ob: Outbox, lane: str, cid: str, *, kind: str = "pcd01", ttl_s: float = 3600, body: str = "x") -> int:
    return await ob.enqueue(lane=lane, kind=kind, control_id=cid, payload=hl7(cid, body), ttl_s=ttl_s)


def committed_control_ids(path) -> list[str]:
    """Read the file through an independent connection (what survives a crash)."""
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT control_id FROM messages ORDER BY id")]


async def test_enqueue_returns_only_after_the_row_is_committed_to_the_file(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    await put(ob, "doc", "C1")
    assert committed_control_ids(tmp_path / "o.db") == ["C1"]
    ob.close()


async def test_concurrent_enqueues_of_one_loop_turn_share_one_commit(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    commits = []
    ob._conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    ids = await asyncio.gather(*(put(ob, "doc", f"C{i}") for i in range(50)))
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert len(commits) == 1
    assert len(committed_control_ids(tmp_path / "o.db")) == 50
    ob.close()


async def test_schema_uses_wal_and_enqueue_returns_only_after_the_wal_is_fsynced(tmp_path, monkeypatch):
    """The equivalent of synchronous=FULL (design.md §2 inv. 2): the commit's WAL frames are
    fsynced -- by the real fsync, watched here, on a worker thread -- before enqueue returns."""
    synced: list[str] = []
    real_fsync = os.fsync

    def watched_fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "fsync", watched_fsync)
    ob = Outbox.open(tmp_path / "o.db")
    synced.clear()
    await put(ob, "doc", "C1")
    assert ob._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert synced == [f"{tmp_path / 'o.db'}-wal"]  # before put() returned
    ob.close()


async def test_lanes_deliver_in_production_order_and_independently(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    for i in range(5):
        await put(ob, "doc", f"D{i}")
        await put(ob, "am", f"A{i}", kind="pcd04")
    got = {"doc": [], "am": []}
    for lane in got:
        msg = await ob.claim(lane)
        while msg is not None:
            got[lane].append(msg.control_id)
            assert msg.state == "in_flight"
            msg = await ob.finish(msg, "delivered")
    assert got == {"doc": [f"D{i}" for i in range(5)], "am": [f"A{i}" for i in range(5)]}
    stats = ob.stats()
    assert stats["doc"].delivered == 5 and stats["doc"].pending == 0
    ob.close()


async def test_quarantined_message_is_kept_with_reason_and_does_not_block_the_lane(tmp_path):
    alerts = []
    ob = Outbox.open(tmp_path / "o.db", on_alert=lambda name, d: alerts.append((name, d)))
    for i in range(3):
        await put(ob, "doc", f"C{i}")
    first = await ob.claim("doc")
    second = await ob.finish(first, "quarantined", reason="AE from receiver", ack_text="bad OBX")
    assert second.control_id == "C1"
    row = ob._conn.execute("SELECT state, reason, ack_text FROM messages WHERE id=?", (first.id,)).fetchone()
    assert row == ("quarantined", "AE from receiver", "bad OBX")
    assert alerts[0][0] == "message_quarantined" and alerts[0][1]["control_id"] == "C0"
    assert ob.stats()["doc"].quarantined == 1
    ob.close()


async def test_restart_turns_in_flight_rows_back_to_pending_in_order(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    for i in range(3):
        await put(ob, "doc", f"C{i}")
    msg = await ob.claim("doc")
    assert ob.stats()["doc"].in_flight >= 1  # claimed by the sender (a batch at a time)
    ob.close()  # as if killed: the row stays in_flight in the file
    ob = Outbox.open(tmp_path / "o.db")
    assert ob.stats()["doc"].in_flight == 0 and ob.stats()["doc"].pending == 3
    again = await ob.claim("doc")
    assert (again.id, again.payload) == (msg.id, msg.payload)  # identical bytes, same MSH-10
    ob.close()


async def test_message_past_its_ttl_is_expired_not_sent_and_kept(tmp_path):
    alerts = []
    ob = Outbox.open(tmp_path / "o.db", on_alert=lambda name, d: alerts.append(name))
    await put(ob, "am", "OLD", kind="pcd04", ttl_s=0.05)
    await put(ob, "am", "NEW", kind="pcd04", ttl_s=60)
    await asyncio.sleep(0.1)
    msg = await ob.claim("am")
    assert msg.control_id == "NEW"
    stats = ob.stats()["am"]
    assert stats.expired == 1 and stats.in_flight == 1 and stats.pending == 0
    assert "messages_expired" in alerts
    reason = ob._conn.execute("SELECT reason FROM messages WHERE control_id='OLD'").fetchone()[0]
    assert "TTL" in reason
    ob.close()


def file_bytes(path) -> int:
    return sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))


class StepClock:
    """Wall clock for created_at: each message 20 s after the previous (an 8-hour outage
    in a few seconds)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


async def test_budget_thins_old_observations_by_age_keeps_recent_complete_and_the_file_within_1_2x(
    tmp_path, daemon_logs
):
    max_bytes = 1 << 20
    clock = StepClock(time.time() - 8 * 3600)
    alerts = []
    path = tmp_path / "o.db"
    ob = Outbox.open(path, max_bytes=max_bytes, on_alert=lambda name, d: alerts.append(name), clock=clock)
    body = "v" * 1000
    largest = 0
    n = 0
    while clock.now < time.time():
        await put(ob, "doc", f"O{n:05d}", body=body, ttl_s=86400)
        if n % 50 == 0:
            await put(ob, "doc", f"E{n:05d}", kind="pcd10", ttl_s=86400)
            await put(ob, "doc.alarms", f"A{n:05d}", kind="pcd04", ttl_s=86400)
        largest = max(largest, file_bytes(path))
        clock.now += 20
        n += 1
    ob.close()
    assert largest <= 1.2 * max_bytes
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT control_id, kind, created_at FROM messages ORDER BY id").fetchall()
    kept = {cid for cid, kind, _ in rows}
    assert {f"E{i:05d}" for i in range(0, n, 50)} <= kept  # events never thinned
    assert {f"A{i:05d}" for i in range(0, n, 50)} <= kept  # alarms never thinned
    end = clock.now

    def share(lo_s: float, hi_s: float) -> float:
        sent = [i for i in range(n) if lo_s <= end - (end - 20 * (n - i)) < hi_s]
        return sum(f"O{i:05d}" in kept for i in sent) / max(1, len(sent))

    assert share(0, 900) == 1.0  # the last 15 minutes complete
    shares = [share(900 * 2**k, 900 * 2 ** (k + 1)) for k in range(4)]  # 15-30 min, 30-60, 1-2 h, 2-4 h
    assert shares == sorted(shares, reverse=True) and shares[0] > shares[-1], shares  # resolution falls with age
    assert 0 < shares[-1] <= 0.25, shares  # the oldest hours thinned hard, never emptied
    assert alerts.count("outbox_budget_thinned") == 1  # one crossing, one alert
    thin_logs = [e for e in daemon_logs if "thinn" in e["event"]]
    assert len(thin_logs) <= 2  # the alert's WARNING and at most one summary in a few real seconds
    assert Outbox.open(path).stats()["doc"].thinned == n - len([c for c in kept if c[0] == "O"]) > 0


async def test_budget_never_drops_events_or_alarms_and_raises_an_alert(tmp_path, daemon_logs):
    alerts = []
    ob = Outbox.open(tmp_path / "o.db", max_bytes=300_000, on_alert=lambda name, d: alerts.append(name))
    for i in range(300):
        await put(ob, "doc", f"E{i}", kind="pcd10", body="e" * 1500)
    assert len(committed_control_ids(tmp_path / "o.db")) == 300
    assert alerts.count("outbox_budget_exceeded") == 1
    assert [e["log_level"] for e in daemon_logs if "budget" in e["event"]] == ["error"]
    ob.close()


async def test_over_budget_alert_fires_once_per_crossing_not_per_commit(tmp_path):
    """An alert is itself committed (MQTT .../alerts); alerting on every commit would feed itself."""
    alerts = []
    ob = Outbox.open(tmp_path / "o.db", max_bytes=300_000, on_alert=lambda name, d: alerts.append(name))
    for i in range(300):
        await put(ob, "doc", f"E{i}", kind="pcd10", body="e" * 1500)
    assert alerts.count("outbox_budget_exceeded") == 1
    ob.delivered_retention_s = 0
    while (msg := await ob.claim("doc")) is not None:  # deliver and compact: back under the budget
        await ob.finish(msg, "delivered", claim_next=False)
    await ob.compact()
    for i in range(300):
        await put(ob, "doc", f"F{i}", kind="pcd10", body="e" * 1500)
    assert alerts.count("outbox_budget_exceeded") == 2  # a second crossing, a second alert
    ob.close()


async def test_quarantine_alert_and_log_carry_no_receiver_ack_text(tmp_path, daemon_logs):
    """Receivers' error texts often echo patient data; they stay in the database only."""
    alerts = []
    ob = Outbox.open(tmp_path / "o.db", on_alert=lambda name, d: alerts.append(d))
    await put(ob, "doc", "Q1")
    msg = await ob.claim("doc")
    await ob.finish(
        msg, "quarantined", reason="AE from receiver", ack_text="patient MRN-4711 not found", claim_next=False
    )
    assert any(e["event"] == "outbox message quarantined" for e in daemon_logs)
    assert "MRN-4711" not in str(alerts) and "MRN-4711" not in str(daemon_logs)
    with sqlite3.connect(tmp_path / "o.db") as db:
        assert db.execute("SELECT ack_text FROM messages").fetchone()[0] == "patient MRN-4711 not found"
    ob.close()


async def test_delivered_rows_are_compacted_after_retention_others_kept(tmp_path):
    ob = Outbox.open(tmp_path / "o.db", delivered_retention_s=0.05)
    for i in range(3):
        await put(ob, "doc", f"C{i}")
    msg = await ob.claim("doc")
    msg = await ob.finish(msg, "delivered")
    await ob.finish(msg, "quarantined", reason="AE", claim_next=False)
    await asyncio.sleep(0.1)
    assert await ob.compact() == 1
    assert committed_control_ids(tmp_path / "o.db") == ["C1", "C2"]
    ob.close()


async def test_enqueue_wakes_the_lane_waiter_without_polling(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    wake = ob.waiter("am")
    wake.clear()
    task = asyncio.create_task(wake.wait())
    await put(ob, "doc", "D1")
    await asyncio.sleep(0)
    assert not task.done()  # another lane's commit does not wake it
    await put(ob, "am", "A1", kind="pcd04")
    await asyncio.wait_for(task, 1.0)
    ob.close()


def test_a_file_that_is_not_sqlite_is_refused_as_corrupt(tmp_path):
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxCorrupt) as info:
        Outbox.open(path)
    assert info.value.path == str(path)


def test_a_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "o.db"
    Outbox.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(OutboxSchemaError) as info:
        Outbox.open(path)
    assert info.value.found == 99 and info.value.expected == SCHEMA_VERSION


def test_a_foreign_sqlite_file_is_not_taken_over(tmp_path):
    path = tmp_path / "o.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE patients (id)")
    with pytest.raises(OutboxSchemaError):
        Outbox.open(path)


async def test_invalid_enqueue_arguments_are_refused(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    with pytest.raises(ValueError, match="ttl_s"):
        await ob.enqueue(lane="doc", kind="pcd01", control_id="C", payload=b"x", ttl_s=0)
    with pytest.raises(ValueError, match="priority"):
        await ob.enqueue(lane="doc", kind="pcd01", control_id="C", payload=b"x", ttl_s=1, priority="urgent")
    ob.close()


async def test_oldest_pending_age_is_reported(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    await put(ob, "doc", "C1")
    t = time.time()
    age = ob.stats()["doc"].oldest_pending_age_s
    assert 0 <= age <= time.time() - t + 1
    ob.close()


async def test_a_sender_does_not_claim_a_message_before_its_commit_is_fsynced(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    await put(ob, "doc", "C0")
    gate = threading.Event()
    ob._producer._syncer.submit(gate.wait, 10)  # the fsync thread is busy: the next sync waits
    enqueue = asyncio.create_task(put(ob, "doc", "C1"))
    for _ in range(100):  # until C1 is committed (visible in the file), its fsync still queued
        await asyncio.sleep(0.001)
        if "C1" in committed_control_ids(tmp_path / "o.db"):
            break
    assert "C1" in committed_control_ids(tmp_path / "o.db") and not enqueue.done()
    assert [m.control_id for m in await ob.claim_many("doc", 10)] == ["C0"]  # not C1 yet
    gate.set()
    await enqueue
    assert [m.control_id for m in await ob.claim_many("doc", 10)] == ["C1"]
    ob.close()


@pytest.mark.parametrize("journalled", [0, 30], ids=["in-flight", "half-delivered-in-the-journal"])
async def test_the_budget_never_thins_messages_a_sender_holds_in_flight(tmp_path, journalled):
    """Claims are not written to the file and a delivery is a journal line until its window
    is applied: those rows say pending in the file, so the thinning, which takes the oldest
    pending observations first, must skip them (a delivered message counted as thinned, or
    one in flight deleted, would be a false record)."""
    clock = StepClock(time.time() - 8 * 3600)
    path = tmp_path / "o.db"
    ob = Outbox.open(path, max_bytes=1 << 20, clock=clock)
    for i in range(150):
        await put(ob, "doc", f"O{i:05d}", body="v" * 1000, ttl_s=86400)
        clock.now += 20
    window = await ob.claim_many("doc", 60)  # the 60 oldest: first in line for thinning
    assert len(window) == 60 and ob.stats()["doc"].thinned == 0
    for msg in window[:journalled]:
        ob.delivered(msg, "AA")
    n = 150
    while ob.stats()["doc"].thinned == 0:
        await put(ob, "doc", f"O{n:05d}", body="v" * 1000, ttl_s=86400)
        clock.now += 20
        n += 1
    assert set(committed_control_ids(path)) >= {m.control_id for m in window}
    stats = ob.stats()["doc"]
    assert (stats.delivered, stats.in_flight) == (journalled, 60 - journalled)
    with sqlite3.connect(path) as db:  # the daemon's pending figure is the file's, less its 60
        in_file = db.execute("SELECT count(*) FROM messages WHERE state='pending'").fetchone()[0]
    assert stats.pending == in_file - 60
    await ob.finish_many([Outcome(m, "delivered") for m in window[journalled:]])
    assert ob.stats()["doc"].delivered == 60
    ob.close()
