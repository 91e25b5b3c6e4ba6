"""MllpSender against the real EhrReceiver over loopback TCP and a real outbox file."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import pytest
import trustme

from gateway.mllp.sender import MllpSender, make_client_ssl_context
from gateway.outbox import Outbox
from simulators.ehr import EhrReceiver

FAST = dict(ack_timeout_s=0.3, connect_timeout_s=0.5, initial_backoff_s=0.01, max_backoff_s=0.05)


def hl7(cid: str, kind: str = "ORU^R01^ORU_R01") -> bytes:
    return f"MSH|^~\\&|PUMPGW|W|EHR|H|20240101000000+0000||{kind}|{cid}|P|2.6\rOBX|1|ST|x||{cid}\r".encode()


async def fill(ob: Outbox, lane: str, n: int, prefix: str = "C", kind: str = "pcd01", ttl_s: float = 3600) -> list[str]:
    cids = [f"{prefix}{i:05d}" for i in range(n)]
    await asyncio.gather(*(ob.enqueue(lane=lane, kind=kind, control_id=c, payload=hl7(c), ttl_s=ttl_s) for c in cids))
    return cids


@contextlib.asynccontextmanager
async def running(*senders: MllpSender):
    tasks = [asyncio.create_task(s.run()) for s in senders]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results), results


async def until(pred, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.005)


def accepted(rx: EhrReceiver) -> list[str]:
    return [r.control_id for r in rx.received if r.answer in ("AA", "CA")]


@pytest.fixture
def outbox(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    yield ob
    ob.close()


async def test_outage_then_up_delivers_everything_in_order_without_duplicates(outbox):
    rx = EhrReceiver(mode="down:0.4")
    port = await rx.start()
    cids = await fill(outbox, "doc", 200)
    async with running(MllpSender(outbox, lane="doc", host="127.0.0.1", port=port, **FAST)):
        await until(lambda: outbox.stats()["doc"].delivered == 200)
    assert [r.control_id for r in rx.received] == cids
    await rx.stop()


async def test_ae_quarantines_that_message_and_the_rest_flow(outbox):
    rx = EhrReceiver(mode="ae:/C00003/")
    port = await rx.start()
    cids = await fill(outbox, "doc", 10)
    async with running(MllpSender(outbox, lane="doc", host="127.0.0.1", port=port, **FAST)):
        await until(lambda: outbox.stats()["doc"].delivered == 9)
    assert [r.control_id for r in rx.received] == cids  # sent once, not retried
    assert outbox.stats()["doc"].quarantined == 1
    row = outbox._conn.execute("SELECT control_id, reason, ack_text FROM messages WHERE state='quarantined'").fetchone()
    assert row[0] == "C00003" and row[1].startswith("AE") and "simulated AE" in row[2]
    await rx.stop()


async def test_ar_is_retried_with_identical_bytes_until_accepted(outbox):
    rx = EhrReceiver(mode="cr:1,cr:2,ca")
    port = await rx.start()
    await fill(outbox, "doc", 3)
    async with running(MllpSender(outbox, lane="doc", host="127.0.0.1", port=port, **FAST)):
        await until(lambda: outbox.stats()["doc"].delivered == 3)
    got = [(r.control_id, r.answer) for r in rx.received]
    assert got == [("C00000", "CR"), ("C00000", "CR"), ("C00000", "CA"), ("C00001", "CA"), ("C00002", "CA")]
    assert rx.received[0].raw == rx.received[1].raw == rx.received[2].raw
    assert rx.connections == 1  # AR/CR keep the connection
    await rx.stop()


@pytest.mark.parametrize("mode", ["noack:1", "wrong-msa2:1", "close-mid-ack:1", "slow:0.5"])
async def test_hostile_receiver_modes_lead_to_resend_of_same_bytes_and_in_order_delivery(outbox, mode):
    rx = EhrReceiver(mode=mode)
    port = await rx.start()
    cids = await fill(outbox, "doc", 5)
    sender = MllpSender(outbox, lane="doc", host="127.0.0.1", port=port, **FAST)
    async with running(sender):
        if mode.startswith("slow"):
            await until(lambda: len(rx.received) >= 2)
            rx.set_mode("aa")  # slower than the ACK timeout: resent until the receiver speeds up
        await until(lambda: outbox.stats()["doc"].delivered == 5)
    seq = [r.control_id for r in rx.received]
    assert list(dict.fromkeys(seq)) == cids
    assert all(
        b in cids[cids.index(a) : cids.index(a) + 2] for a, b in zip(seq, seq[1:])
    )  # repeats only of the current one
    assert rx.received[0].raw == rx.received[1].raw  # the first message was sent again unchanged
    assert rx.connections >= 2  # no ACK -> reconnect
    await rx.stop()


async def test_receiver_that_accepts_and_never_answers_is_left_after_the_ack_timeout(outbox):
    rx = EhrReceiver(mode="noack")
    port = await rx.start()
    await fill(outbox, "doc", 1)
    sender = MllpSender(outbox, lane="doc", host="127.0.0.1", port=port, **FAST)
    async with running(sender):
        await until(lambda: rx.connections >= 3)
        assert outbox.stats()["doc"].delivered == 0
        assert "no ACK" in sender.last_error
    assert len({r.raw for r in rx.received}) == 1
    await rx.stop()


async def test_expired_alarm_is_not_sent_as_live_while_the_receiver_is_down(outbox):
    rx = EhrReceiver(mode="down:0.5")
    port = await rx.start()
    await outbox.enqueue(lane="am", kind="pcd04", control_id="OLD", payload=hl7("OLD", "ORU^R40^ORU_R40"), ttl_s=0.2)
    await outbox.enqueue(lane="am", kind="pcd04", control_id="NEW", payload=hl7("NEW", "ORU^R40^ORU_R40"), ttl_s=60)
    async with running(MllpSender(outbox, lane="am", host="127.0.0.1", port=port, **FAST)):
        await until(lambda: outbox.stats()["am"].delivered == 1)
    assert [r.control_id for r in rx.received] == ["NEW"]
    assert outbox.stats()["am"].expired == 1
    await rx.stop()


async def test_alarm_lane_keeps_low_latency_while_observation_backlog_drains(outbox):
    rx = EhrReceiver()
    port = await rx.start()
    await fill(outbox, "doc", 5000)
    doc = MllpSender(outbox, lane="doc", host="127.0.0.1", port=port, **FAST)
    am = MllpSender(outbox, lane="am", host="127.0.0.1", port=port, **FAST)
    lag = []
    async with running(doc, am):
        for k in range(5):
            await until(lambda: doc.delivered >= 500 * (k + 1))
            cid = f"ALARM{k}"
            await outbox.enqueue(lane="am", kind="pcd04", control_id=cid, payload=hl7(cid, "ORU^R40^ORU_R40"), ttl_s=60)
            before = doc.delivered
            await until(lambda: any(r.control_id == cid for r in rx.received))
            lag.append(doc.delivered - before)
        await until(lambda: doc.delivered == 5000)
    # each alarm arrived while only a handful of backlog messages went out, not behind the backlog
    assert max(lag) < 100, lag
    await rx.stop()


async def test_changing_host_or_port_with_messages_queued_strands_none(outbox):
    old_rx, new_rx = EhrReceiver(mode="noack"), EhrReceiver()
    old_port, new_port = await old_rx.start(), await new_rx.start()
    cids = await fill(outbox, "doc", 20)
    async with running(MllpSender(outbox, lane="doc", host="127.0.0.1", port=old_port, **FAST)):
        await until(lambda: len(old_rx.received) >= 1)  # first message in flight at the old address
    async with running(MllpSender(outbox, lane="doc", host="localhost", port=new_port, **FAST)):
        await until(lambda: outbox.stats()["doc"].delivered == 20)
    assert accepted(new_rx) == cids
    await old_rx.stop()
    await new_rx.stop()


async def test_producing_and_delivering_at_once_keeps_the_sender_draining(outbox):
    rx = EhrReceiver()
    port = await rx.start()
    # 300 producers share the loop with the receiver: a slow loop must not pass for a lost ACK
    # (a resend would make a legitimate duplicate, which is not what this test is about)
    sender = MllpSender(outbox, lane="doc", host="127.0.0.1", port=port, **{**FAST, "ack_timeout_s": 10.0})
    delivered_while_producing = []

    async def pump(p: int) -> None:
        for i in range(20):
            cid = f"P{p:03d}-{i:02d}"
            await outbox.enqueue(lane="doc", kind="pcd01", control_id=cid, payload=hl7(cid), ttl_s=60)
            await asyncio.sleep(0.002)

    async with running(sender):
        await asyncio.gather(*(pump(p) for p in range(300)))
        delivered_while_producing.append(sender.delivered)
        await until(lambda: sender.delivered == 6000)
    assert delivered_while_producing[0] > 0
    per_pump: dict[str, list[str]] = {}
    for cid in accepted(rx):
        per_pump.setdefault(cid[:4], []).append(cid)
    assert all(v == sorted(v) and len(v) == 20 for v in per_pump.values()) and len(per_pump) == 300
    await rx.stop()


async def test_tls_delivers_with_server_verification_and_client_certificate(outbox, tmp_path):
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    ca.configure_trust(server_ctx)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    ca_file, cert_file = tmp_path / "ca.pem", tmp_path / "client.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.issue_cert("pumpgw-client").private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    rx = EhrReceiver(ssl_context=server_ctx)
    port = await rx.start()
    cids = await fill(outbox, "doc", 5)
    ctx = make_client_ssl_context(ca_file, cert_file, cert_file)
    async with running(
        MllpSender(
            outbox, lane="doc", host="127.0.0.1", port=port, ssl_context=ctx, server_hostname="localhost", **FAST
        )
    ):
        await until(lambda: outbox.stats()["doc"].delivered == 5)
    assert accepted(rx) == cids
    await rx.stop()


async def test_tls_with_an_untrusted_server_never_falls_back_to_plaintext(outbox, tmp_path):
    rogue = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    rogue.issue_cert("localhost").configure_cert(server_ctx)
    plain_rx, tls_rx = EhrReceiver(), EhrReceiver(ssl_context=server_ctx)
    ours = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ours.cert_pem.write_to_path(str(ca_file))
    await fill(outbox, "doc", 2)
    for rx in (plain_rx, tls_rx):
        port = await rx.start()
        sender = MllpSender(
            outbox,
            lane="doc",
            host="127.0.0.1",
            port=port,
            server_hostname="localhost",
            ssl_context=make_client_ssl_context(ca_file),
            **FAST,
        )
        async with running(sender):
            await until(lambda: sender.last_error != "")
            await asyncio.sleep(0.2)
        assert rx.received == [] and outbox.stats()["doc"].delivered == 0
        await rx.stop()
