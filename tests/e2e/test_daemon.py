"""`pumpgw run` as systemd runs it: a real subprocess polling simulated pumps on ptys and
delivering HL7 through the SQLite outbox to the EHR receiver simulator over MLLP."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import time
from collections import defaultdict

from simulators.ehr import EhrReceiver
from simulators.fleet import PtyFleet, demo_pumps

from .conftest import write_gateway_config


async def _until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def _start_daemon(pumpgw_cmd, env, config, stderr_path):
    return await asyncio.create_subprocess_exec(
        *pumpgw_cmd,
        "run",
        "--config",
        str(config),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=open(stderr_path, "ab"),  # noqa: SIM115
    )


async def test_daemon_notifies_systemd_delivers_hl7_and_stops_cleanly_on_sigterm(tmp_path, pumpgw_cmd, subprocess_env):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    env = {**subprocess_env, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    received: list[str] = []

    def datagrams() -> list[str]:
        while True:
            try:
                received.append(notify.recv(4096).decode())
            except BlockingIOError:
                return received

    receiver = EhrReceiver(port=0, log_path=tmp_path / "ehr.jsonl")
    port = await receiver.start()
    async with PtyFleet(demo_pumps()) as fleet:
        config = write_gateway_config(
            tmp_path / "gw.toml", ptys=fleet.paths, ehr_port=port, outbox=tmp_path / "outbox.sqlite"
        )
        proc = await _start_daemon(pumpgw_cmd, env, config, tmp_path / "daemon.log")
        try:
            await _until(lambda: "READY=1" in "".join(datagrams()), 20, "READY=1")
            await _until(lambda: any(m == "WATCHDOG=1" for m in datagrams()), 10, "a watchdog ping")
            await _until(
                lambda: (
                    {r.message_type for r in receiver.received} >= {"ORU^R01^ORU_R01", "ORU^R42^ORU_R01"}
                    and len({r.raw.split(b"\r")[0] for r in receiver.received}) >= 6
                ),
                30,
                "PCD-01 and PCD-10 from the pumps",
            )
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
            datagrams()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            notify.close()
    await receiver.stop()
    assert "STOPPING=1" in "".join(received)
    assert all(r.answer == "AA" for r in receiver.received)
    # every pump is documented: PCD-01 per pump carries its bed label in PV1-3
    beds = {b"test bed 1", b"test bed 2", b"test bed 3"}
    assert all(any(bed in r.raw for r in receiver.received) for bed in beds)
    # the outbox agrees: everything it holds was delivered, nothing pending after a clean stop
    with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
        states = dict(db.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall())
    assert set(states) <= {"delivered", "pending"}
    assert states.get("delivered", 0) >= len({r.control_id for r in receiver.received})


async def test_daemon_killed_with_sigkill_loses_nothing_after_restart(tmp_path, pumpgw_cmd, subprocess_env):
    """kill -9 several times while messages flow; after the last restart drains, the receiver
    holds every message the outbox ever committed, in order per lane, duplicates only of a
    message that was in flight at a kill."""
    receiver = EhrReceiver(port=0, log_path=tmp_path / "ehr.jsonl")
    port = await receiver.start()
    async with PtyFleet(demo_pumps()) as fleet:
        config = write_gateway_config(
            tmp_path / "gw.toml",
            ptys=fleet.paths,
            ehr_port=port,
            outbox=tmp_path / "outbox.sqlite",
            pcd01_interval_s=1,
            poll_interval_s=0.2,
        )
        kills = 0
        for kill_after in (2.5, 1.7, 3.1, 2.2):
            proc = await _start_daemon(pumpgw_cmd, subprocess_env, config, tmp_path / "daemon.log")
            await asyncio.sleep(kill_after)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            kills += 1
        # Drain with the same outbox and destination but no pumps, so nothing new is produced
        # while we wait for the backlog (and its in-flight rows) to be delivered.
        drain_config = write_gateway_config(
            tmp_path / "drain.toml", ptys={}, ehr_port=port, outbox=tmp_path / "outbox.sqlite"
        )

        def drained() -> bool:
            with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
                return db.execute("SELECT count(*) FROM messages WHERE state != 'delivered'").fetchone()[0] == 0

        log = tmp_path / "daemon.log"
        starts = log.read_text().count('"event": "started"')
        proc = await _start_daemon(pumpgw_cmd, subprocess_env, drain_config, log)
        try:
            await _until(lambda: log.read_text().count('"event": "started"') > starts, 20, "the daemon to start")
            await _until(drained, 30, "the outbox to drain")
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    await receiver.stop()
    assert kills == 4
    with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
        committed = db.execute("SELECT lane, control_id FROM messages ORDER BY id").fetchall()
    by_lane: dict[str, list[str]] = defaultdict(list)
    for lane, control_id in committed:
        by_lane[lane].append(control_id)
    got = [r.control_id for r in receiver.received]
    assert set(got) == {c for _, c in committed}, "a committed message never reached the receiver"
    for lane, expected in by_lane.items():
        lane_got = [c for c in got if c in set(expected)]
        deduplicated = [c for i, c in enumerate(lane_got) if i == 0 or c != lane_got[i - 1]]
        assert deduplicated == expected, f"lane {lane} out of order"
        assert len(lane_got) - len(expected) <= kills, f"lane {lane}: more duplicates than kills"
    assert len(committed) > 20


def test_run_refuses_an_invalid_config_with_exit_1_and_no_traceback(tmp_path, pumpgw_cmd, subprocess_env):
    import subprocess

    bad = tmp_path / "gw.toml"
    bad.write_text('[gateway]\nsite = "s"\nward = "w"\ngateway_id = "g"\neui64 = "nothex"\n')
    result = subprocess.run(
        [*pumpgw_cmd, "run", "--config", str(bad)], env=subprocess_env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "gateway.eui64" in result.stderr and "outbox" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_a_corrupt_outbox_file_exits_1_naming_it(tmp_path, pumpgw_cmd, subprocess_env):
    import subprocess

    outbox = tmp_path / "outbox.sqlite"
    outbox.write_bytes(b"this is not a database" * 100)
    config = write_gateway_config(tmp_path / "gw.toml", ptys={}, ehr_port=9, outbox=outbox)
    result = subprocess.run(
        [*pumpgw_cmd, "run", "--config", str(config)], env=subprocess_env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1, result.stderr
    assert "cannot start" in result.stderr and str(outbox) in result.stderr
    assert "Traceback" not in result.stderr
