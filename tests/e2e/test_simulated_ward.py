"""The whole chain on all three protocols with faults injected: `pumpgw simulate` runs a
scripted ward, `pumpgw run` polls it, and the EHR receiver gets what the simulators did."""

from __future__ import annotations

import asyncio
import re
import signal
import time

from simulators.ehr import EhrReceiver

SCENARIO = """
[simulation]
acceleration = 1.0

[[racks]]
id = "rack1"
pillars = 1
slots = 4

[[pumps]]
id = "ne-bed01"
protocol = "ne1000"
rate_ml_h = 15.4
vtbi_ml = 250
poll_interval_s = 0.5

[[pumps.at]]
t_s = 3
action = "alarm"
kind = "occlusion"

[[pumps]]
id = "al-bed02"
protocol = "alaris"
serial = "8002-51740"
rate_ml_h = 8
vtbi_ml = 100
poll_interval_s = 0.5

[[pumps.at]]
t_s = 1
action = "fault"
corrupt_checksum = true

[[pumps.at]]
t_s = 3
action = "clear_faults"

[[pumps.at]]
t_s = 4
action = "titrate"
rate_ml_h = 12

[[pumps]]
id = "bb-p1s1"
protocol = "bbraun-bcc"
rack = "rack1"
pillar = 1
slot = 1
rate_ml_h = 20
poll_interval_s = 1
"""


def pcd01_rate(raw: bytes) -> str | None:
    """OBX-5 of the programmed-rate row (MDC_FLOW_FLUID_PUMP) of a PCD-01/PCD-10."""
    match = re.search(rb"OBX\|\d+\|NM\|157784\^MDC_FLOW_FLUID_PUMP\^MDC\|[\d.]+\|([^|]*)\|", raw)
    return match.group(1).decode() if match else None


async def _line(stream: asyncio.StreamReader, contains: str, timeout_s: float) -> list[str]:
    seen: list[str] = []
    async with asyncio.timeout(timeout_s):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"stream ended before {contains!r}: {seen}")
            seen.append(line)
            if contains in line:
                return seen


async def test_gateway_reports_what_the_simulated_ward_does_on_all_three_protocols(
    tmp_path, pumpgw_cmd, subprocess_env
):
    scenario = tmp_path / "ward.toml"
    scenario.write_text(SCENARIO)
    config = tmp_path / "gw.toml"
    receiver = EhrReceiver(port=0, log_path=tmp_path / "ehr.jsonl")
    port = await receiver.start()
    sim = await asyncio.create_subprocess_exec(
        *pumpgw_cmd,
        "simulate",
        "--scenario",
        str(scenario),
        "--write-config",
        str(config),
        "--ehr-port",
        str(port),
        "--outbox",
        str(tmp_path / "outbox.sqlite"),
        "--pty-dir",
        str(tmp_path),
        env=subprocess_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    gw = None
    try:
        printed = await _line(sim.stdout, "running", 30)
        gw = await asyncio.create_subprocess_exec(
            *pumpgw_cmd,
            "run",
            "--config",
            str(config),
            env=subprocess_env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=open(tmp_path / "gw.log", "wb"),  # noqa: SIM115
        )

        def stalled(r) -> bool:
            return (
                r.message_type == "ORU^R40^ORU_R40"
                and b"pump motor stalled" in r.raw
                and b"|ne-bed01^NE-1000^" in r.raw
                and b"|start|" in r.raw
            )

        def titrated(r) -> bool:
            return r.message_type == "ORU^R42^ORU_R01" and b"8002-51740" in r.raw and pcd01_rate(r.raw) == "12.00"

        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            done = any(map(stalled, receiver.received)) and any(map(titrated, receiver.received))
            if done and any(b"bb-p1s1" in r.raw for r in receiver.received):
                break
            await asyncio.sleep(0.2)
        gw.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(gw.wait(), 20) == 0
    finally:
        for proc in (gw, sim):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        await receiver.stop()
    assert any("ne-bed01" in line for line in printed) and any("pillar 1 slot 1" in line for line in printed)
    records = receiver.received
    assert records and all(r.answer == "AA" for r in records)
    rates = {pcd01_rate(r.raw) for r in records if r.message_type == "ORU^R01^ORU_R01"}
    # each protocol's programmed rate, as its simulator runs it, reached the patient record
    assert {"15.40", "8.00"} <= rates, rates
    assert any(rate is not None and float(rate) == 20 for rate in rates), rates
    # the NE-1000 occlusion (a motor stall on that protocol) became a PCD-04 alarm onset
    assert any(map(stalled, records))
    # the Alaris titration 8 -> 12 mL/h reached the record as PCD-10 events, after the
    # corrupt-checksum fault had been injected and cleared
    assert any(map(titrated, records))
    assert "Traceback" not in (tmp_path / "gw.log").read_text()
    # the written config pins the example drug library: every program got a verdict row
    pcd01 = [r.raw for r in records if r.message_type == "ORU^R01^ORU_R01"]
    assert pcd01 and all(b"PUMPGW_DRUGLIB_VERDICT" in raw for raw in pcd01)
