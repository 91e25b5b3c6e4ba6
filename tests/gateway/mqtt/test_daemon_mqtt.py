"""The daemon's MQTT side on the real outbox: a dashboard sees pumps, events and alarms, and
nothing committed during a broker outage is lost or reordered once the broker returns."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time

from simulators.ehr import EhrReceiver
from simulators.fleet import PtyFleet, demo_pumps
from tests.e2e.conftest import write_gateway_config

BASE = "pumpgw/v1/test-site/gw-test"
OUTAGE_S = 5.0


async def test_events_and_alarms_survive_a_broker_outage_through_the_outbox(
    tmp_path, make_broker, subscribe, pumpgw_cmd, subprocess_env
):
    broker = make_broker(["persistence true"])
    dashboard = await asyncio.to_thread(subscribe, broker, [f"{BASE}/#"], client_id="dashboard", clean=False)
    t0 = time.monotonic()
    # 20x accelerated pumps: bed02 completes ~3 s in, bed03's motor stalls ~4.5 s in --
    # both while the broker is down.
    pumps = demo_pumps(clock=lambda: t0 + (time.monotonic() - t0) * 20)
    receiver = EhrReceiver(port=0)
    port = await receiver.start()
    outbox = tmp_path / "outbox.sqlite"
    async with PtyFleet(pumps) as fleet:
        config = write_gateway_config(
            tmp_path / "gw.toml",
            ptys=fleet.paths,
            ehr_port=port,
            outbox=outbox,
            poll_interval_s=0.3,
            extra=f"""
[mqtt]
enabled = true
host = "{broker.host}"
port = {broker.port}
retry = {{ initial_backoff_s = 0.1, max_backoff_s = 0.5 }}
""",
        )
        proc = await asyncio.create_subprocess_exec(
            *pumpgw_cmd,
            "run",
            "--config",
            str(config),
            env=subprocess_env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=open(tmp_path / "gw.log", "wb"),  # noqa: SIM115
        )
        try:
            await asyncio.to_thread(
                dashboard.wait_for, lambda t, p, r: t.endswith("/events") and b"delivery_start" in p, 15
            )
            await asyncio.to_thread(broker.stop)
            await asyncio.sleep(OUTAGE_S)
            await asyncio.to_thread(broker.start)
            await asyncio.to_thread(
                dashboard.wait_for, lambda t, p, r: t.endswith("/bed03/alarms") and b'"onset"' in p, 20
            )
            await asyncio.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    await receiver.stop()
    await asyncio.to_thread(dashboard.drain, 1.0)
    seen: list[tuple[str, str]] = []
    for topic, payload, _ in dashboard.history:
        if topic.endswith(("/events", "/alarms")):
            seen.append((topic.rsplit("/", 1)[1], json.loads(payload)["message_id"]))
    with sqlite3.connect(outbox) as db:
        rows = db.execute(
            "SELECT lane, control_id, state FROM messages WHERE lane LIKE 'mqtt-%' ORDER BY id"
        ).fetchall()
    assert rows and {state for _, _, state in rows} == {"delivered"}
    for lane, leaf in (("mqtt-events", "events"), ("mqtt-alarms", "alarms")):
        committed = [cid for ln, cid, _ in rows if ln == lane]
        arrived = [mid for kind, mid in seen if kind == leaf]
        deduplicated = [m for i, m in enumerate(arrived) if m not in arrived[:i]]
        assert deduplicated == committed, f"{leaf}: lost or reordered across the outage"
    kinds = [json.loads(p).get("kind") for t, p, _ in dashboard.history if t.endswith("/events")]
    assert "delivery_complete" in kinds  # bed02 finished while the broker was down
