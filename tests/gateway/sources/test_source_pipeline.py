"""A vendor server's PCD feed reaches the drug-library check and the same outputs as polled
pumps: every verdict kind is visible in the PCD-01 the EHR receives, patient context travels
to the outgoing messages, PCD-10 and PCD-04 become delivery and alarm events."""

from __future__ import annotations

import sqlite3

from common.pcd.parse import parse_message
from gateway.druglib.verdicts import VerdictKind
from simulators.vendor_server.client import VendorServer
from simulators.vendor_server.messages import VERDICT_PROGRAMS
from tests.gateway.sources.conftest import running_gateway

ALL_KINDS = {k.value for k in VerdictKind}


def verdict_kinds(raw: bytes) -> set[str]:
    return {
        seg.component(5, 1)
        for seg in parse_message(raw).named("OBX")
        if seg.component(5, 3) and seg.component(5, 1) in ALL_KINDS
    }


def of_type(received, prefix: str) -> list:
    return [r for r in received if r.message_type.startswith(prefix)]


async def test_each_of_the_twelve_verdict_kinds_reaches_the_ehr_in_the_pcd01_and_pcd10_of_its_pump(tmp_path):
    async with running_gateway(tmp_path) as gw:
        sim = VendorServer("127.0.0.1", gw.port)
        answers = await sim.run_verdicts()
        await sim.close()
        assert [a.codes for a in answers] == [["CA"]] * 12  # enhanced mode (MSH-15 AL, MSH-16 NE)
        await gw.wait_for_ehr(lambda rx: len(of_type(rx, "ORU^R01")) >= 12)
    by_bed: dict[str, set[str]] = {}
    for r in of_type(gw.ehr.received, "ORU^R01"):
        bed = parse_message(r.raw).named("PV1")[0].component(3, 3)
        by_bed.setdefault(bed, set()).update(verdict_kinds(r.raw))
    for kind, program in VERDICT_PROGRAMS.items():
        assert kind in by_bed[program.bed], (kind, by_bed.get(program.bed))
    assert set().union(*by_bed.values()) == ALL_KINDS
    # the first report of each pump is a delivery start (PCD-10), carrying its verdicts too
    starts: dict[str, set[str]] = {}
    for r in of_type(gw.ehr.received, "ORU^R42"):
        starts.setdefault(parse_message(r.raw).named("PV1")[0].component(3, 3), set()).update(verdict_kinds(r.raw))
    for kind, program in VERDICT_PROGRAMS.items():
        assert kind in starts[program.bed], (kind, starts.get(program.bed))


async def test_patient_context_from_pid_is_carried_to_the_outgoing_messages_of_that_device(tmp_path):
    async with running_gateway(tmp_path) as gw:
        sim = VendorServer("127.0.0.1", gw.port)
        await sim.pcd01(VERDICT_PROGRAMS["within_limits"])
        await sim.pcd01(VERDICT_PROGRAMS["weight_missing"])
        await sim.close()
        await gw.wait_for_ehr(lambda rx: len(of_type(rx, "ORU^R01")) >= 2)
    mrns = {
        parse_message(r.raw).named("PV1")[0].component(3, 3): parse_message(r.raw).named("PID")[0].component(3, 1)
        for r in of_type(gw.ehr.received, "ORU^R01")
    }
    assert mrns == {"ICU bed 21": "MRN2001", "ICU bed 29": "MRN2009"}


async def test_pcd10_start_and_pcd04_alarm_start_end_become_events_at_the_ehr(tmp_path):
    async with running_gateway(tmp_path) as gw:
        sim = VendorServer("127.0.0.1", gw.port)
        p = VERDICT_PROGRAMS["above_hard_max"]
        await sim.pcd10(p, "start")
        await sim.pcd04(p, alert_id="AL-1", phase="start")
        await sim.pcd04(p, alert_id="AL-1", phase="end")
        await sim.close()
        await gw.wait_for_ehr(lambda rx: len(of_type(rx, "ORU^R40")) >= 2)
    phases = [
        next(s.field(5) for s in parse_message(r.raw).named("OBX") if s.component(3, 2) == "MDC_ATTR_EVENT_PHASE")
        for r in of_type(gw.ehr.received, "ORU^R40")
    ]
    assert phases == ["start", "end"]
    starts = of_type(gw.ehr.received, "ORU^R42")
    assert starts and "above_hard_max" in verdict_kinds(starts[0].raw)


async def test_the_receipt_is_committed_with_the_pump_state_it_caused(tmp_path):
    async with running_gateway(tmp_path) as gw:
        sim = VendorServer("127.0.0.1", gw.port)
        answer = await sim.pcd01(VERDICT_PROGRAMS["within_limits"])
        await sim.close()
    with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
        rows = db.execute("SELECT source, control_id FROM inbound_receipts").fetchall()
        states = db.execute("SELECT pump_id FROM pump_state").fetchall()
    assert rows == [("vendor", answer.control_id)] and ("vs-01",) in states


async def test_an_unlisted_device_is_refused_with_ae_at_obx_18_when_only_listed_devices_are_admitted(tmp_path):
    async with running_gateway(tmp_path, devices=False) as gw:
        sim = VendorServer("127.0.0.1", gw.port)
        answer = await sim.pcd01(VERDICT_PROGRAMS["within_limits"])
        await sim.close()
    err = parse_message(answer.acks[0]).named("ERR")[0]
    assert answer.codes == ["CE"] and (err.component(2, 1), err.component(2, 3), err.component(3, 1)) == (
        "OBX",
        "18",
        "204",
    )


async def test_admit_any_makes_an_unlisted_device_a_pump_that_continues_after_a_restart(tmp_path):
    source = 'admit = "any"\ndefault_care_area = "ICU"'
    async with running_gateway(tmp_path, devices=False, source=source) as gw:
        sim = VendorServer("127.0.0.1", gw.port)
        assert (await sim.pcd01(VERDICT_PROGRAMS["above_soft_max"])).codes == ["CA"]
        await sim.close()
        await gw.wait_for_ehr(lambda rx: len(of_type(rx, "ORU^R01")) >= 1)
        assert "vendor-VS0003" in gw.daemon.pipeline.pumps
    assert "above_soft_max" in verdict_kinds(of_type(gw.ehr.received, "ORU^R01")[0].raw)
    async with running_gateway(tmp_path, devices=False, source=source) as gw:
        sim = VendorServer("127.0.0.1", gw.port, id_prefix="B")
        assert (await sim.pcd01(VERDICT_PROGRAMS["above_soft_max"])).codes == ["CA"]
        await sim.close()
        rt = gw.daemon.pipeline.pumps["vendor-VS0003"]
        assert rt.stored_key is not None  # restored from its committed state, not a new baseline
    assert not of_type(gw.ehr.received, "ORU^R42")  # no second delivery start after the restart
