"""A full disk is a degraded mode, not a loss: on a real 4 MiB tmpfs filled to the last byte."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from gateway.mllp.sender import MllpSender
from gateway.outbox import Outbox
from simulators.ehr import EhrReceiver
from tests.small_fs import fill, free, mounted_tmpfs

FAST = dict(ack_timeout_s=2.0, connect_timeout_s=1.0, initial_backoff_s=0.05, max_backoff_s=0.5)


def hl7(cid: str, size: int) -> bytes:
    head = f"MSH|^~\\&|PUMPGW|W|EHR|H|20240101000000+0000||ORU^R01^ORU_R01|{cid}|P|2.6\rOBX|1|ST|x||".encode()
    return head + b"v" * size + b"\r"


@pytest.fixture
def small_fs(tmp_path):
    with mounted_tmpfs(tmp_path / "fs") as where:
        yield where


async def test_on_a_full_disk_alarms_and_events_still_commit_and_are_delivered_with_one_error(small_fs, daemon_logs):
    alerts: list[str] = []
    path = small_fs / "outbox.sqlite"
    ob = Outbox.open(path, reserve_bytes=1 << 20, on_alert=lambda name, d: alerts.append(name))
    assert (small_fs / "outbox.sqlite.reserve").stat().st_size == 1 << 20
    rx = EhrReceiver()
    port = await rx.start()
    await rx.go_down()  # the EHR is away too: the backlog must be held on the full disk
    senders = [MllpSender(ob, lane=lane, host="127.0.0.1", port=port, **FAST) for lane in ("ehr", "ehr.alarms")]
    tasks = [asyncio.create_task(s.run()) for s in senders]
    filler = fill(small_fs)
    alarms, events = [], []
    try:
        for i in range(400):  # far more than the free space: observations must make room
            await ob.enqueue(
                lane="ehr", kind="pcd01", control_id=f"O{i:04d}", payload=hl7(f"O{i:04d}", 2000), ttl_s=3600
            )
            if i % 10 == 0:
                alarms.append(
                    await ob.enqueue(
                        lane="ehr.alarms",
                        kind="pcd04",
                        control_id=f"A{i:04d}",
                        payload=hl7(f"A{i:04d}", 800),
                        ttl_s=3600,
                    )
                )
                events.append(
                    await ob.enqueue(
                        lane="ehr", kind="pcd10", control_id=f"E{i:04d}", payload=hl7(f"E{i:04d}", 800), ttl_s=3600
                    )
                )
        assert ob.disk_full
        assert len(alarms) == len(events) == 40  # every alarm and event committed
        errors = [e for e in daemon_logs if e["log_level"] in ("error", "critical")]
        assert [e["event"].split(";")[0] for e in errors] == ["outbox: the disk is full"]  # one ERROR
        assert alerts.count("outbox_disk_full") == 1
        await rx.come_up()  # delivery of what is committed goes on, on the still-full disk
        async with asyncio.timeout(60):
            while len([r for r in rx.received if r.control_id[0] in "AE"]) < 80:
                await asyncio.sleep(0.05)
        assert not any(t.done() for t in tasks)  # no sender died of a write error
        free(small_fs, filler, 2 << 20)  # an operator frees 2 MiB: recovery at once, no restart
        await ob.enqueue(lane="ehr.alarms", kind="pcd04", control_id="A-after", payload=hl7("A-after", 100), ttl_s=3600)
        assert not ob.disk_full
        assert (small_fs / "outbox.sqlite.reserve").stat().st_size == 1 << 20
        async with asyncio.timeout(30):
            while "A-after" not in {r.control_id for r in rx.received}:
                await asyncio.sleep(0.05)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await rx.stop()
        ob.close()
    delivered = [r.control_id for r in rx.received]
    assert [c for c in delivered if c[0] == "A"] == [f"A{i:04d}" for i in range(0, 400, 10)] + ["A-after"]
    assert not [e for e in daemon_logs if "exc_info" in e]  # no traceback logged


async def test_an_outbox_opens_on_a_full_disk_by_releasing_its_reserve_and_says_so(small_fs, daemon_logs):
    path = small_fs / "outbox.sqlite"
    Outbox.open(path, reserve_bytes=1 << 20).close()
    for wal in small_fs.glob("outbox.sqlite-*"):
        wal.unlink()  # a clean stop: the WAL must be created again on open
    fill(small_fs)
    alerts: list[str] = []
    ob = Outbox.open(path, reserve_bytes=1 << 20, on_alert=lambda name, d: alerts.append(name))
    try:
        assert ob.disk_full and alerts == ["outbox_disk_full"]
        assert any(e["log_level"] == "error" and "disk is full" in e["event"] for e in daemon_logs)
        await ob.enqueue(lane="am", kind="pcd04", control_id="A1", payload=hl7("A1", 200), ttl_s=60)
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT control_id FROM messages").fetchall() == [("A1",)]
    finally:
        ob.close()
