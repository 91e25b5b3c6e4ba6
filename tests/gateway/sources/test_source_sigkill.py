"""SIGKILL of the gateway between committing an inbound message and the sender reading its
ACK: the sender resends after the restart; nothing is lost and nothing doubled at the EHR."""

from __future__ import annotations

import asyncio
import signal
import sqlite3

from common.pcd.parse import parse_message
from simulators.ehr import EhrReceiver
from simulators.vendor_server import messages
from simulators.vendor_server.client import VendorServer
from simulators.vendor_server.messages import VERDICT_PROGRAMS
from tests.gateway.sources.conftest import source_config_text
from tests.ports import free_port


async def start_gateway(pumpgw_cmd, env, config, log):
    proc = await asyncio.create_subprocess_exec(
        *pumpgw_cmd, "run", "--config", str(config), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log
    )
    return proc


async def wait_listening(port: int, proc) -> None:
    async with asyncio.timeout(30):
        while True:
            assert proc.returncode is None, "gateway exited"
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                return
            except OSError:
                await asyncio.sleep(0.1)


async def test_sigkill_between_commit_and_ack_neither_loses_nor_doubles(tmp_path, pumpgw_cmd, subprocess_env):
    ehr = EhrReceiver(port=0, log_path=tmp_path / "ehr.jsonl")
    ehr_port = await ehr.start()
    port = free_port()
    config = tmp_path / "gw.toml"
    config.write_text(source_config_text(tmp_path, ehr_port=ehr_port, port=port), encoding="utf-8")
    programs = list(VERDICT_PROGRAMS.values())
    log = open(tmp_path / "gw.log", "wb")  # noqa: SIM115, ASYNC230
    proc = await start_gateway(pumpgw_cmd, subprocess_env, config, log)
    try:
        await wait_listening(port, proc)
        sim = VendorServer("127.0.0.1", port, ack_timeout_s=3)
        for p in programs[:6]:
            assert (await sim.pcd01(p)).codes == ["CA"]
        # message 7: written, committed by the gateway, the ACK never read: SIGKILL
        cid = sim.next_id()
        raw = messages.pcd01(programs[6], cid)
        await sim.connect()
        sim._writer.write(b"\x0b" + raw + b"\x1c\r")
        await sim._writer.drain()
        async with asyncio.timeout(20):
            while True:
                with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
                    if db.execute("SELECT 1 FROM inbound_receipts WHERE control_id=?", (cid,)).fetchone():
                        break
                await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await sim.close()
        proc = await start_gateway(pumpgw_cmd, subprocess_env, config, log)
        await wait_listening(port, proc)
        assert (await sim.send(raw, cid)).codes == ["CA"]  # the resend: acknowledged, ignored
        for p in programs[7:]:
            assert (await sim.pcd01(p)).codes == ["CA"]
        await sim.close()
        async with asyncio.timeout(30):
            while len({r.control_id for r in ehr.received if r.message_type.startswith("ORU^R01")}) < 12:
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
        await ehr.stop()
    delivered: dict[str, set[str]] = {}
    for r in ehr.received:
        if r.message_type.startswith("ORU^R01"):
            bed = parse_message(r.raw).named("PV1")[0].component(3, 3)
            delivered.setdefault(bed, set()).add(r.control_id)  # an outbox resend keeps its MSH-10
    assert {bed: len(ids) for bed, ids in delivered.items()} == {p.bed: 1 for p in programs}
    text = (tmp_path / "gw.log").read_text(errors="replace")
    assert "duplicate message acknowledged and ignored" in text  # the receipt survived the kill
    assert "MRN20" not in text and "Sim^Patient" not in text  # no patient data in the log (info)
