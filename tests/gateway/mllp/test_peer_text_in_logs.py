"""A hostile or chatty receiver's text never reaches the logs above DEBUG and never grows the
outbox past what it counts: real MLLP peer on loopback, real outbox file, real log pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging

import pytest

from common.mllp.framing import MllpDecoder, frame
from gateway.log import configure_logging
from gateway.mllp.ack import extract_control_id
from gateway.mllp.sender import MllpSender
from gateway.outbox import Outbox

FAST = dict(ack_timeout_s=2.0, connect_timeout_s=1.0, initial_backoff_s=0.001, max_backoff_s=0.005)
PID = "PID|||MRN4711^^^HOSP^MR||DOE^JANE||19700101"
SECRETS = ("MRN4711", "DOE", "JANE", "19700101")


def hl7(cid: str) -> bytes:
    return f"MSH|^~\\&|PUMPGW|W|EHR|H|20240101000000+0000||ORU^R01^ORU_R01|{cid}|P|2.6\rOBX|1|ST|x||{cid}\r".encode()


def ack(cid: str, code: str, text: str = "", extra: str = "") -> bytes:
    return (
        f"MSH|^~\\&|EHR|H|PUMPGW|W|20240101000000+0000||ACK^R01^ACK|A{cid}|P|2.6\rMSA|{code}|{cid}|{text}\r{extra}"
    ).encode()


class ScriptedPeer:
    """An MLLP receiver answering each message with ``answer(n, control_id)``: an HL7 message
    (framed here) or a bytearray written as it is (unframed garbage)."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.count = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer) -> None:
        decoder = MllpDecoder()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                for item in decoder.feed(data):
                    if isinstance(item, bytes):
                        self.count += 1
                        out = self.answer(self.count, extract_control_id(item))
                        writer.write(out if isinstance(out, bytearray) else frame(out))
                        await writer.drain()
        writer.close()

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def running(sender: MllpSender):
    task = asyncio.create_task(sender.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(pred, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.005)


@pytest.fixture
def captured():
    stream = io.StringIO()
    yield stream
    logging.getLogger().handlers.clear()
    logging.getLogger().setLevel(logging.WARNING)


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


PID_REPLIES = {
    "ar-with-text": (lambda cid: ack(cid, "AR", "patient DOE^JANE MRN4711 unknown"), "AR (text 32 chars)"),
    "ar-with-err": (
        lambda cid: ack(cid, "AR", "", f"ERR|||207^Application internal error^HL70357|E||||{PID}\r"),
        "ERR codes 207",
    ),
    "non-ack-echo": (
        lambda cid: f"MSH|^~\\&|EHR|H|X|Y|2024||ORU^R01|{cid}|P|2.6\r{PID}\r".encode(),
        "segments [MSH,PID], MSH-9 ORU^R01",
    ),
    "unframed-garbage": (
        lambda cid: bytearray(PID.encode() + b"\r" + frame(ack(cid, "AR", "x"))),
        "outside an MLLP frame",
    ),
    "ae-with-text": (lambda cid: ack(cid, "AE", "patient DOE^JANE MRN4711 unknown"), "quarantined"),
}


@pytest.mark.parametrize("reply", sorted(PID_REPLIES))
async def test_pid_bearing_replies_never_reach_a_log_record_above_debug(tmp_path, captured, reply):
    """AR text, ERR, a non-ACK echo, unframed bytes, AE text: a summary above DEBUG, no PHI."""
    answer, expected = PID_REPLIES[reply]
    configure_logging(level="debug", fmt="json", stream=captured)  # debug on, wire_trace off
    outbox = Outbox.open(tmp_path / "o.db")
    peer = ScriptedPeer(lambda n, cid: answer(cid) if n == 1 else ack(cid, "AA"))
    port = await peer.start()
    await outbox.enqueue(lane="doc", kind="pcd01", control_id="C1", payload=hl7("C1"), ttl_s=3600)
    async with running(MllpSender(outbox, lane="doc", host="127.0.0.1", port=port, **FAST)):
        await until(lambda: outbox.stats()["doc"].delivered + outbox.stats()["doc"].quarantined == 1)
    await peer.stop()
    outbox.close()
    above = [r for r in records(captured) if r["level"] not in ("debug", "wire")]
    assert any(expected in json.dumps(r) for r in above), above
    for r in above:
        for secret in SECRETS:
            assert secret not in json.dumps(r), r
    # without wire_trace not even DEBUG shows the text
    assert not any(secret in captured.getvalue() for secret in SECRETS)


async def _records_of_a_wire_traced_ae(tmp_path, captured) -> list[dict]:
    """Every log record of one AE reply (carrying a PID) received with wire_trace on."""
    configure_logging(level="debug", fmt="json", wire_trace=True, stream=captured)
    outbox = Outbox.open(tmp_path / "o.db")
    peer = ScriptedPeer(lambda n, cid: ack(cid, "AE", f"unknown patient {PID}"))
    port = await peer.start()
    await outbox.enqueue(lane="doc", kind="pcd01", control_id="C1", payload=hl7("C1"), ttl_s=3600)
    async with running(MllpSender(outbox, lane="doc", host="127.0.0.1", port=port, **FAST)):
        await until(lambda: outbox.stats()["doc"].quarantined == 1)
    await peer.stop()
    outbox.close()
    return records(captured)


def assert_full_reply_only_on_the_wire_logger(recs: list[dict]) -> None:
    wire = [r for r in recs if r["logger"] == "pumpgw.wire.mllp.doc.rx"]
    assert wire and all(r["level"] == "wire" for r in wire)
    assert "MRN4711" in wire[0]["event"]
    assert not any("MRN4711" in json.dumps(r) for r in recs if r["level"] not in ("debug", "wire"))


async def test_wire_trace_at_debug_shows_the_full_reply_on_the_wire_logger(tmp_path, captured):
    assert_full_reply_only_on_the_wire_logger(await _records_of_a_wire_traced_ae(tmp_path, captured))


async def test_a_15_mib_ae_for_every_message_is_stored_bounded_and_counted(tmp_path):
    huge = "E" * (15 << 20)
    outbox = Outbox.open(tmp_path / "o.db")
    peer = ScriptedPeer(lambda n, cid: ack(cid, "AE", huge))
    port = await peer.start()
    for i in range(4):
        await outbox.enqueue(lane="doc", kind="pcd01", control_id=f"C{i}", payload=hl7(f"C{i}"), ttl_s=3600)
    async with running(MllpSender(outbox, lane="doc", host="127.0.0.1", port=port, **FAST)):
        await until(lambda: outbox.stats()["doc"].quarantined == 4, timeout=120)
    await peer.stop()
    stored = outbox._conn.execute("SELECT length(ack_text), size, length(payload) FROM messages").fetchall()
    assert all(text_len <= 1024 for text_len, _, _ in stored)
    # the stored text counts: stats bytes = payloads + texts, and the file holds no more than that
    assert outbox.stats()["doc"].bytes == sum(size for _, size, _ in stored) > sum(p for _, _, p in stored) + 4 * 1000
    assert outbox.bytes == outbox.stats()["doc"].bytes
    outbox.close()
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("o.db*"))
    assert on_disk < 1 << 20, on_disk


async def test_a_receiver_answering_ar_forever_logs_one_warning_per_window_not_one_per_retry(tmp_path, captured):
    configure_logging(level="info", fmt="json", stream=captured)
    outbox = Outbox.open(tmp_path / "o.db")
    peer = ScriptedPeer(lambda n, cid: ack(cid, "AR", "busy"))
    port = await peer.start()
    await outbox.enqueue(lane="doc", kind="pcd01", control_id="C1", payload=hl7("C1"), ttl_s=3600)
    async with running(MllpSender(outbox, lane="doc", host="127.0.0.1", port=port, **FAST)):
        await until(lambda: peer.count >= 60)
    await peer.stop()
    outbox.close()
    warnings = [r for r in records(captured) if "not accepted" in r["event"]]
    assert len(warnings) == 1


async def test_wire_records_keep_their_level_name_after_a_library_renames_level_5(tmp_path, captured):
    """uvicorn (the fleet's server) registers level 5 as TRACE; our wire trace stays "wire"."""
    import logging

    logging.addLevelName(5, "TRACE")
    try:
        assert_full_reply_only_on_the_wire_logger(await _records_of_a_wire_traced_ae(tmp_path, captured))
    finally:
        logging.addLevelName(5, "WIRE")
