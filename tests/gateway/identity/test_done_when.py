"""The issue's Done-when, end to end with real parts: bed 3's pump is swapped while the gateway
is down, bed 5's firmware is updated while it runs. Read back from MQTT, a real MLLP receiver
(PCD-01 identity rows; the CMMS report), the log and the audit trail; then a row edited by
hand makes `pumpgw audit verify` fail."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from simulators.ehr import EhrReceiver
from simulators.scenario import Action, Scenario, ScenarioFile
from simulators.scenario_runner import ScenarioRunner

BASE = "pumpgw/v1/test-site/gw-test"
ORIGINAL, REPLACEMENT = "8002-51740", "8002-60001"


def _scenario() -> Scenario:
    return Scenario(
        ScenarioFile.model_validate(
            {
                "pumps": [
                    {"id": "bed03", "protocol": "alaris", "serial": ORIGINAL, "rate_ml_h": 8, "poll_interval_s": 0.3},
                    {"id": "bed05", "protocol": "ne1000", "rate_ml_h": 5, "firmware": "3.928", "poll_interval_s": 0.3},
                ]
            }
        )
    )


def _config(path: Path, runner: ScenarioRunner, *, ehr: int, cmms: int, broker, db: Path) -> Path:
    ends = {e.pump_id: e for e in runner.endpoints}
    path.write_text(f"""
[gateway]
site = "test-site"
ward = "icu-t"
gateway_id = "gw-test"
eui64 = "001BC50C0000AA01"

[hl7]
pcd01_interval_s = 1.0
processing_id = "D"

[outbox]
path = "{db}"

[logging]
format = "json"

[mqtt]
enabled = true
host = "{broker.host}"
port = {broker.port}
retry = {{ initial_backoff_s = 0.1, max_backoff_s = 0.5 }}

[[destinations]]
name = "ehr"
host = "127.0.0.1"
port = {ehr}
messages = ["pcd01", "pcd10", "pcd04"]
retry = {{ initial_backoff_s = 0.1, max_backoff_s = 0.5 }}

[[destinations]]
name = "cmms"
host = "127.0.0.1"
port = {cmms}
messages = ["dmc"]
retry = {{ initial_backoff_s = 0.1, max_backoff_s = 0.5 }}

[[pumps]]
id = "bed03"
protocol = "alaris"
location = "bed 3"
asset_tag = "MT-0003"
poll_interval_s = 0.3
request_timeout_s = 0.5
link = {{ type = "serial", url = "{ends["bed03"].path}", baudrate = 38400 }}

[[pumps]]
id = "bed05"
protocol = "ne1000"
location = "bed 5"
asset_tag = "MT-0005"
poll_interval_s = 0.3
request_timeout_s = 0.5
link = {{ type = "serial", url = "{ends["bed05"].path}", baudrate = 19200 }}
""")
    return path


async def _until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _rows(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


async def _start(pumpgw_cmd, env, config: Path, log: Path):
    return await asyncio.create_subprocess_exec(
        *pumpgw_cmd,
        "run",
        "--config",
        str(config),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=open(log, "ab"),  # noqa: SIM115
    )


async def _stop(proc) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            assert await asyncio.wait_for(proc.wait(), 20) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def _identity_rows(raw: bytes) -> dict[str, str]:
    rows = {}
    for seg in raw.split(b"\r"):
        f = seg.decode().split("|")
        if f[0] == "OBX" and f[3].split("^")[1:2] and f[3].split("^")[1].startswith(("MDC_ATTR_ID", "MDC_ID_PROD")):
            rows[f[3].split("^")[1]] = f[5]
    return rows


async def test_swap_while_down_and_firmware_update_while_running_reach_every_output(
    tmp_path, make_broker, subscribe, pumpgw_cmd, subprocess_env
):
    broker = make_broker()
    dashboard = await asyncio.to_thread(subscribe, broker, [f"{BASE}/#"])
    ehr, cmms = EhrReceiver(port=0), EhrReceiver(port=0)
    ehr_port, cmms_port = await ehr.start(), await cmms.start()
    runner = ScenarioRunner(_scenario(), pty_dir=tmp_path)
    await runner.start()
    db, log = tmp_path / "gw.sqlite", tmp_path / "gw.log"
    config = _config(tmp_path / "gw.toml", runner, ehr=ehr_port, cmms=cmms_port, broker=broker, db=db)
    cli = [*pumpgw_cmd]
    try:
        # 1. first run: both pumps registered with their asset tags
        gw = await _start(pumpgw_cmd, subprocess_env, config, log)
        registered = "SELECT subject FROM audit WHERE kind='identity.registered'"
        await _until(lambda: {r[0] for r in _rows(db, registered)} == {"bed03", "bed05"}, 30, "registration")
        await _stop(gw)
        # 2. bed 3's pump is swapped while the gateway is down
        await runner.apply("bed03", Action(t_s=0, action="swap_identity", serial=REPLACEMENT))
        swap_mark = len(ehr.received)
        gw = await _start(pumpgw_cmd, subprocess_env, config, log)
        swapped = "SELECT subject FROM audit WHERE kind='identity.device_swapped'"
        await _until(lambda: _rows(db, swapped) == [("bed03",)], 30, "swap detected at start")
        # 3. bed 5's firmware is updated while the gateway runs (the pump reboots)
        await runner.apply("bed05", Action(t_s=0, action="firmware", firmware="3.930"))
        fw = "SELECT subject FROM audit WHERE kind='identity.firmware_changed'"
        await _until(lambda: _rows(db, fw) == [("bed05",)], 30, "firmware change")

        def identity_of(asset_tag: str, value: str):
            return [
                r
                for r in ehr.received[swap_mark:]
                if r.message_type == "ORU^R01^ORU_R01"
                and f"|{asset_tag}|".encode() in r.raw
                and f"|{value}|".encode() in r.raw
            ]

        await _until(
            lambda: identity_of("MT-0003", REPLACEMENT) and identity_of("MT-0005", "3.930"),
            30,
            "PCD-01 with the new identities",
        )
        await _until(
            lambda: (
                any(b"device_swapped" in r.raw for r in cmms.received)
                and any(b"firmware_changed" in r.raw for r in cmms.received)
            ),
            30,
            "CMMS reports",
        )
        await asyncio.to_thread(
            dashboard.wait_for, lambda t, p, r: t.endswith("/bed05/events") and b"firmware_changed" in p, 20
        )
        await asyncio.sleep(1.0)  # let a few more polls pass: no duplicate event may follow
        await _stop(gw)
    finally:
        if "gw" in locals() and gw.returncode is None:
            gw.kill()
            await gw.wait()
        await runner.stop()
        await ehr.stop()
        await cmms.stop()
    await asyncio.to_thread(dashboard.drain, 1.0)

    # MQTT: one event each, retained inventory with the traceability fields
    events = [json.loads(p) for t, p, _ in dashboard.history if t.endswith("/events")]
    trace = [
        (e["pump"], e["kind"])
        for e in events
        if e["kind"]
        in ("device_swapped", "firmware_changed", "pump_library_changed", "device_returned", "identity_unreadable")
    ]
    assert trace == [("bed03", "device_swapped"), ("bed05", "firmware_changed")]
    swap = next(e for e in events if e["kind"] == "device_swapped")
    assert swap["schema_version"] == 2 and swap["detail"]["previous_serial"] == ORIGINAL
    assert swap["detail"]["serial"] == REPLACEMENT and swap["detail"]["contradicts_asset_tag"] == "true"
    inventories = [json.loads(p) for t, p, _ in dashboard.history if t.endswith("/inventory")]
    last = {e["pump"]: e for e in inventories[-1]["pumps"]}
    assert inventories[-1]["ward"] == "icu-t" and inventories[-1]["schema_version"] == 2
    assert last["bed03"]["serial_number"] == REPLACEMENT and last["bed03"]["asset_tag"] == "MT-0003"
    assert last["bed03"]["bed"] == "bed 3" and last["bed03"]["first_seen"] and last["bed03"]["last_seen"]
    assert last["bed05"]["firmware"] == "3.930"

    # PCD-01 identity rows in the MDS at the real MLLP receiver
    pcd01_3 = _identity_rows(identity_of("MT-0003", REPLACEMENT)[-1].raw)
    assert pcd01_3["MDC_ID_PROD_SPEC_SERIAL"] == REPLACEMENT and pcd01_3["MDC_ATTR_ID_SOFT"] == "MT-0003"
    assert "model=" in pcd01_3["MDC_ATTR_ID_MODEL"]
    pcd01_5 = _identity_rows(identity_of("MT-0005", "3.930")[-1].raw)
    assert pcd01_5["MDC_ID_PROD_SPEC_FW"] == "3.930" and "MDC_ID_PROD_SPEC_SERIAL" not in pcd01_5
    dmc = next(r.raw for r in cmms.received if b"device_swapped" in r.raw)
    assert b"69135^MDC_OBS_MEM^MDC" in dmc and b"IHE_PCD_015" in dmc and REPLACEMENT.encode() in dmc
    assert all(r.answer == "AA" for r in ehr.received + cmms.received)

    # the log: ERROR for the swap that contradicts the asset tag, WARNING for the firmware
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    swap_logs = [x for x in lines if x.get("kind") == "device_swapped"]
    assert [x["level"] for x in swap_logs] == ["error"] and swap_logs[0]["asset_tag"] == "MT-0003"
    assert [x["level"] for x in lines if x.get("kind") == "firmware_changed"] == ["warning"]
    assert "Traceback" not in log.read_text()

    # the audit trail, through the CLI (read-only), verifies; one firmware row
    listed = json.loads(
        subprocess.run(
            [*cli, "audit", "--config", str(config), "list", "--kind", "identity", "--json"],
            capture_output=True,
            text=True,
            env=subprocess_env,
            check=True,
        ).stdout
    )
    assert [r["subject"] for r in listed if r["kind"] == "identity.firmware_changed"] == ["bed05"]
    assert [r["detail"]["previous"] for r in listed if r["kind"] == "identity.firmware_changed"] == ["3.928"]
    ok = subprocess.run(
        [*cli, "audit", "--config", str(config), "verify"], capture_output=True, text=True, env=subprocess_env
    )
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stdout + ok.stderr

    # a row edited by hand: verify fails and names the row
    conn = sqlite3.connect(db)
    seq = conn.execute("SELECT seq FROM audit WHERE kind='identity.device_swapped'").fetchone()[0]
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET detail=replace(detail, ?, ?) WHERE seq=?", (REPLACEMENT, ORIGINAL, seq))
    conn.commit()
    conn.close()
    bad = subprocess.run(
        [*cli, "audit", "--config", str(config), "verify"], capture_output=True, text=True, env=subprocess_env
    )
    assert bad.returncode == 1 and f"row {seq}:" in bad.stdout and "NOT intact" in bad.stdout
