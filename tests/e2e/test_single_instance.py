"""One daemon per outbox, and a clean stop that leaves nothing in flight: real `pumpgw run`
subprocesses, real SIGKILL, a real MLLP peer."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess

from gateway.outbox.lock import InstanceLock, OutboxLocked, holder_pid

from .conftest import write_gateway_config


async def _wait_for_line(path, text: str, timeout_s: float = 20) -> None:
    async with asyncio.timeout(timeout_s):
        while not (path.exists() and text in path.read_text()):
            await asyncio.sleep(0.05)


async def test_second_daemon_on_one_outbox_exits_1_naming_the_first_and_sigkill_frees_the_lock(
    tmp_path, pumpgw_cmd, subprocess_env
):
    outbox = tmp_path / "outbox.sqlite"
    config = write_gateway_config(tmp_path / "gw.toml", ptys={}, ehr_port=9, outbox=outbox)
    log = tmp_path / "first.log"
    first = await asyncio.create_subprocess_exec(
        *pumpgw_cmd, "run", str(config), env=subprocess_env, stdout=asyncio.subprocess.DEVNULL, stderr=open(log, "ab")
    )  # noqa: SIM115
    try:
        await _wait_for_line(log, '"event": "started"')
        assert holder_pid(outbox) == first.pid
        second = subprocess.run(
            [*pumpgw_cmd, "run", "--config", str(config)],
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert f"in use by process {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        first.send_signal(signal.SIGKILL)
        await first.wait()
        # the kernel released the lock with the process: no stale lock after a crash
        assert holder_pid(outbox) is None
        lock = InstanceLock.acquire(outbox)
        lock.release()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()


def test_the_lock_is_exclusive_between_two_opens_in_one_process(tmp_path):
    outbox = tmp_path / "outbox.sqlite"
    held = InstanceLock.acquire(outbox)
    try:
        try:
            InstanceLock.acquire(outbox)
        except OutboxLocked as exc:
            import os

            assert exc.holder_pid == os.getpid()
        else:
            raise AssertionError("a second lock on the same outbox was granted")
    finally:
        held.release()
    InstanceLock.acquire(outbox).release()


def test_run_never_creates_an_outbox_in_a_missing_folder(tmp_path, pumpgw_cmd, subprocess_env):
    outbox = tmp_path / "typo" / "outbox.sqlite"
    config = write_gateway_config(tmp_path / "gw.toml", ptys={}, ehr_port=9, outbox=outbox)
    result = subprocess.run(
        [*pumpgw_cmd, "run", str(config)], env=subprocess_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"folder {tmp_path / 'typo'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "typo").exists()


async def test_clean_stop_returns_the_unacknowledged_message_to_pending(tmp_path, pumpgw_cmd, subprocess_env):
    """A receiver that reads but never answers: SIGTERM during the ACK wait exits 0 and leaves
    the message pending, saying it returned the message in flight, and the next start is not a
    crash recovery."""
    got = asyncio.Event()

    async def silent(reader, writer):
        while await reader.read(65536):
            got.set()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    outbox = tmp_path / "outbox.sqlite"
    config = write_gateway_config(tmp_path / "gw.toml", ptys={}, ehr_port=port, outbox=outbox)
    # one message waiting in the lane before the daemon starts
    from gateway.outbox import Outbox

    ob = Outbox.open(outbox)
    await ob.enqueue(lane="ehr", kind="pcd10", control_id="C1", payload=b"MSH|^~\\&|x\r", ttl_s=3600)
    ob.close()
    log = tmp_path / "daemon.log"
    proc = await asyncio.create_subprocess_exec(
        *pumpgw_cmd, "run", str(config), env=subprocess_env, stdout=asyncio.subprocess.DEVNULL, stderr=open(log, "ab")
    )  # noqa: SIM115
    try:
        async with asyncio.timeout(20):
            await got.wait()
        with sqlite3.connect(outbox) as db:  # in flight in the daemon's memory; a claim is not written
            assert db.execute("SELECT state FROM messages").fetchall() == [("pending",)]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        server.close()
    with sqlite3.connect(outbox) as db:
        assert db.execute("SELECT state FROM messages").fetchall() == [("pending",)]
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any("returned to pending at stop" in line["event"] for line in lines)
