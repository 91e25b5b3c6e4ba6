"""Loss-free under failure: kill -9 the fleet service, restart PostgreSQL, restart the broker,
while 20 simulated gateways publish. Afterwards the database holds every event and alarm the
gateways got a PUBACK for (their committed log), none twice, in order per pump."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from fleet.sim.run import RegionRunner
from fleet.sim.world import Region
from tests.fleet.pg import Postgres

ROOT = Path(__file__).resolve().parents[2]


def start_service(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fleet", "run", "--no-http", "--config", str(config)],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait_subscribed(log: Path, times: int) -> None:
    deadline = time.monotonic() + 20
    while log.read_text().count("INFO pumpgw.fleet.collector: subscribed") < times:
        assert time.monotonic() < deadline, f"fleet service did not subscribe:\n{log.read_text()[-2000:]}"
        time.sleep(0.05)


def stored(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn, connect_timeout=2) as conn:
        return conn.execute(
            "SELECT 'events', gateway_id, pump, message_id, (detail->>'seq')::int, id FROM events "
            "UNION ALL SELECT 'alarms', a.gateway_id, a.pump, a.message_id, NULL, a.id FROM alarms a"
        ).fetchall()


def test_no_event_or_alarm_is_lost_or_doubled_across_kill_9_and_restarts(
    make_broker, postgres: Postgres, dsn: str, tmp_path: Path
) -> None:
    broker = make_broker(
        ["persistence true", "autosave_interval 1", "max_queued_messages 0", "max_inflight_messages 200"]
    )
    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[database]\ndsn = "{dsn}"\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        f'client_id = "fleet-reliability"\n[collector]\nbatch_max = 100\nbatch_wait_ms = 20\n'
        f"retry_max_s = 0.5\n"
    )
    log = tmp_path / "fleet.log"
    service = start_service(config, log)
    region = Region(20, 5, rounds=10_000, seed=11, realtime=True, activity=0.3)
    runner = RegionRunner(broker.host, broker.port, region, log_dir=tmp_path)
    stop = threading.Event()
    publisher = threading.Thread(target=runner.run, args=(10_000,), kwargs={"pace_s": 0.1, "stop": stop})
    try:
        wait_subscribed(log, 1)  # the persistent session exists before the gateways publish
        runner.start()
        publisher.start()
        time.sleep(1.0)
        service.send_signal(signal.SIGKILL)  # kill -9 mid-stream
        service.wait(5)
        time.sleep(0.5)
        service = start_service(config, log)
        time.sleep(1.5)
        postgres.stop("fast")  # every connection of the service dies
        time.sleep(0.5)
        postgres.start()
        time.sleep(1.5)
        broker.stop()  # clean stop: Mosquitto saves its persistent sessions
        time.sleep(0.3)
        broker.start()
        time.sleep(1.5)
        stop.set()
        publisher.join(30)
        assert runner.wait_acked(60), "the broker did not acknowledge everything the gateways published"
        committed = runner.committed()
        deadline = time.monotonic() + 60
        want = {c["message_id"] for c in committed}
        while len(have := {r[3] for r in stored(dsn)}) < len(want):
            assert time.monotonic() < deadline, (
                f"{len(want - have)} of {len(want)} committed messages missing after 60 s; "
                f"service log:\n{log.read_text()[-3000:]}"
            )
            time.sleep(0.2)
    finally:
        stop.set()
        runner.stop()
        if service.poll() is None:
            service.send_signal(signal.SIGTERM)
            service.wait(15)
    rows = stored(dsn)
    assert len(committed) > 500  # the test exercised something
    assert {r[3] for r in rows} == {c["message_id"] for c in committed}  # nothing lost, nothing invented
    assert len(rows) == len({r[3] for r in rows})  # none twice
    per_pump: dict[tuple, list[int]] = {}
    for table, gateway_id, pump, _mid, seq, _row_id in sorted(rows, key=lambda r: r[5]):
        if table == "events":
            per_pump.setdefault((gateway_id, pump), []).append(seq)
    disordered = {k: v for k, v in per_pump.items() if v != sorted(v)}
    assert per_pump and not disordered, f"order per pump broken: {disordered}; service log:\n{log.read_text()[-3000:]}"
    # Every PUBACK was also written to the gateways' durable logs.
    logged = sum(1 for f in tmp_path.glob("*.puback.jsonl") for _ in f.open())
    assert logged == len(committed)
    assert os.path.getsize(log) > 0
