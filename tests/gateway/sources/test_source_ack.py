"""ACK semantics of a careful receiver, proved with independent senders (python-hl7's MLLP
client and raw sockets) and with the vendor-server simulator's fault modes."""

from __future__ import annotations

import asyncio
import sqlite3

import hl7
from hl7.mllp import open_hl7_connection
from structlog.testing import capture_logs

from common.pcd.parse import parse_message
from simulators.vendor_server import messages
from simulators.vendor_server.client import VendorServer
from simulators.vendor_server.messages import VERDICT_PROGRAMS
from tests.gateway.sources.conftest import running_gateway

P = VERDICT_PROGRAMS["within_limits"]


def original_mode(raw: bytes) -> str:
    """The same message asking for original-mode acknowledgement (MSH-15/16 empty)."""
    return raw.decode().replace("|AL|NE|", "|||", 1)


async def hl7_send(port: int, text: str) -> list:
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
    try:
        writer.writemessage(hl7.parse(text.replace("\r", "\r")))
        await writer.drain()
        return [await asyncio.wait_for(reader.readmessage(), 10)]
    finally:
        writer.close()
        await writer.wait_closed()


def msa(ack) -> tuple[str, str]:
    seg = ack.segment("MSA")
    return str(seg[1]), str(seg[2])


def err_location(ack) -> str:
    return str(ack.segment("ERR")[2])


async def test_original_mode_aa_from_python_hl7_client_after_the_commit(tmp_path):
    async with running_gateway(tmp_path) as gw:
        [ack] = await hl7_send(gw.port, original_mode(messages.pcd01(P, "HL7-1")))
        assert msa(ack) == ("AA", "HL7-1")
        with sqlite3.connect(tmp_path / "outbox.sqlite") as db:  # committed before the AA
            assert db.execute("SELECT count(*) FROM inbound_receipts WHERE control_id='HL7-1'").fetchone() == (1,)


async def test_enhanced_mode_sends_commit_accept_and_application_ack_as_msh15_16_ask(tmp_path):
    async with running_gateway(tmp_path) as gw:
        sim = VendorServer("127.0.0.1", gw.port, acks_per_message=2)
        raw = messages.pcd01(P, "ENH-1").decode().replace("|AL|NE|", "|AL|AL|", 1).encode()
        answer = await sim.send(raw, "ENH-1")
        await sim.close()
    assert answer.codes == ["CA", "AA"]


async def test_unaccepted_message_type_and_processing_id_are_rejected_with_ar(tmp_path):
    async with running_gateway(tmp_path, source='accept = ["pcd01"]') as gw:
        [ack] = await hl7_send(gw.port, original_mode(messages.pcd10(P, "T-1")))
        assert msa(ack) == ("AR", "T-1") and err_location(ack) == "MSH^1^9"
        assert str(ack.segment("ERR")[3]).startswith("200")
        [ack] = await hl7_send(gw.port, original_mode(messages.pcd01(P, "T-2", processing_id="T")))
        assert msa(ack) == ("AR", "T-2") and err_location(ack) == "MSH^1^11"


async def test_malformed_segments_get_ae_naming_segment_and_field_and_change_nothing(tmp_path):
    async with running_gateway(tmp_path) as gw:
        sim = VendorServer("127.0.0.1", gw.port)
        answer = await sim.pcd01(P, fault="malformed")
        await sim.close()
        ack = parse_message(answer.acks[0])
        assert answer.codes == ["CE"]
        err = ack.named("ERR")[0]
        assert err.component(2, 1) == "OBX" and err.component(2, 3) == "18"
        with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
            assert db.execute("SELECT count(*) FROM inbound_receipts").fetchone() == (0,)
        assert not gw.ehr.received


async def test_a_non_number_in_obx5_is_ae_at_obx_5(tmp_path):
    async with running_gateway(tmp_path) as gw:
        text = original_mode(messages.pcd01(P, "NUM-1")).replace("|15.4|", "|fifteen|")
        [ack] = await hl7_send(gw.port, text)
    assert msa(ack)[0] == "AE" and str(ack.segment("ERR")[2]).endswith("^5")


async def test_duplicate_resend_is_acknowledged_and_ignored(tmp_path):
    async with running_gateway(tmp_path) as gw:
        sim = VendorServer("127.0.0.1", gw.port)
        answer = await sim.pcd01(P, fault="duplicate")
        await sim.pcd01(VERDICT_PROGRAMS["weight_missing"])  # a later message: the EHR has caught up after it
        await sim.close()
        assert answer.codes == ["CA", "CA"]
        assert gw.handler.counters["duplicates"] == 1
        await gw.wait_for_ehr(lambda rx: len([r for r in rx if r.message_type.startswith("ORU^R01")]) >= 2)
        await asyncio.sleep(0.3)
    beds = [
        parse_message(r.raw).named("PV1")[0].component(3, 3)
        for r in gw.ehr.received
        if r.message_type.startswith("ORU^R01")
    ]
    assert beds.count(P.bed) == 1


async def test_a_reused_control_id_with_other_content_is_rejected_and_logged(tmp_path):
    with capture_logs() as logs:
        async with running_gateway(tmp_path) as gw:
            sim = VendorServer("127.0.0.1", gw.port)
            answer = await sim.pcd01(P, fault="reused_id")
            await sim.close()
            assert gw.handler.counters["refused"] == 1
    [entry] = [e for e in logs if e["event"] == "message refused: control id reused with different content"]
    assert entry["log_level"] == "warning" and entry["control_id"] == answer.control_id
    assert answer.codes == ["CA", "CR"]
    err = parse_message(answer.acks[1]).named("ERR")[0]
    assert err.component(3, 1) == "205" and err.component(2, 3) == "10"


async def test_a_slow_sender_is_served(tmp_path):
    async with running_gateway(tmp_path) as gw:
        sim = VendorServer("127.0.0.1", gw.port, slow_chunk=64, slow_pause_s=0.01)
        answer = await sim.pcd01(P, fault="slow")
        await sim.close()
    assert answer.codes == ["CA"]


async def test_a_disconnect_mid_frame_is_discarded_and_the_resend_is_taken_once(tmp_path):
    async with running_gateway(tmp_path) as gw:
        sim = VendorServer("127.0.0.1", gw.port)
        answer = await sim.pcd01(P, fault="disconnect")
        await sim.close()
        assert answer.codes == ["CA"]
        assert gw.handler.counters["received"] == 1
        with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
            assert db.execute("SELECT count(*) FROM inbound_receipts").fetchone() == (1,)


async def test_refuse_errors_answers_ae_at_the_first_conformance_error_but_takes_warnings(tmp_path):
    async with running_gateway(tmp_path, source='conformance = "refuse_errors"') as gw:
        sim = VendorServer("127.0.0.1", gw.port)
        bad = messages.pcd01(P, "CF-1").replace(b"OBX|2|", b"OBX|7|", 1)  # OBX-1 must run 1..n: an error
        answer = await sim.send(bad, "CF-1")
        err = parse_message(answer.acks[0]).named("ERR")[0]
        assert answer.codes == ["CE"] and (err.component(2, 1), err.component(2, 3)) == ("OBX", "1")
        blanks = messages.pcd01(P, "CF-2").replace(b"|Dopamine|", b"| Dopamine|")  # a warning only
        assert (await sim.send(blanks, "CF-2")).codes == ["CA"]
        await sim.close()


async def test_a_resend_racing_its_first_copy_on_another_connection_is_taken_once(tmp_path):
    async with running_gateway(tmp_path) as gw:
        raw = messages.pcd01(P, "RACE-1")
        a, b = VendorServer("127.0.0.1", gw.port), VendorServer("127.0.0.1", gw.port)
        answers = await asyncio.gather(a.send(raw, "RACE-1"), b.send(raw, "RACE-1"))
        await a.close()
        await b.close()
        assert [x.codes for x in answers] == [["CA"], ["CA"]]
        assert (gw.handler.counters["accepted"], gw.handler.counters["duplicates"]) == (1, 1)
