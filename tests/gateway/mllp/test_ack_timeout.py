"""The ACK timeout bounds each exchange, not the connection: one slow ACK after another, each
within the timeout, all count; a receiver that stops reading (our write blocks) or never
answers is left after the timeout with "no ACK", on real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from gateway.mllp.errors import DeliveryError
from gateway.mllp.link import MllpLink
from gateway.outbox import OutboxMessage
from simulators.ehr import EhrReceiver


def message(cid: str, payload: bytes | None = None) -> OutboxMessage:
    body = (
        payload if payload is not None else f"MSH|^~\\&|PUMPGW|W|EHR|H|20260101||ORU^R01^ORU_R01|{cid}|P|2.6\r".encode()
    )
    return OutboxMessage(
        id=1, lane="doc", kind="pcd01", control_id=cid, payload=body, priority="normal",
        created_at=0.0, expires_at=1e12, attempts=0, state="in_flight", ttl_s=60.0,
    )  # fmt: skip


def link(port: int) -> MllpLink:
    return MllpLink(
        lane="doc",
        host="127.0.0.1",
        port=port,
        connect_timeout_s=2,
        ssl_context=None,
        server_hostname=None,
        max_frame_bytes=1 << 26,
    )


@contextlib.asynccontextmanager
async def connected_to_ehr(mode: str) -> AsyncIterator[MllpLink]:
    rx = EhrReceiver(mode=mode)
    lk = link(await rx.start())
    await lk.connect()
    try:
        yield lk
    finally:
        lk.disconnect()
        await rx.stop()


async def test_slow_acks_each_within_the_timeout_all_count_however_long_the_connection_lives():
    async with connected_to_ehr("slow:0.15") as lk:
        started = time.monotonic()
        acks = [await lk.exchange(message(f"S{i}"), timeout_s=0.4) for i in range(5)]
        assert time.monotonic() - started > 0.6  # longer than the timeout, in five exchanges
        assert [a.control_id for a in acks] == [f"S{i}" for i in range(5)] and lk.connected


async def test_a_receiver_that_never_answers_is_left_after_the_timeout():
    async with connected_to_ehr("noack") as lk:
        started = time.monotonic()
        with pytest.raises(DeliveryError, match=r"no ACK within 0\.3 s for N1"):
            await lk.exchange(message("N1"), timeout_s=0.3)
        assert 0.25 < time.monotonic() - started < 5
        assert not lk.connected


async def test_a_receiver_that_stops_reading_is_left_after_the_timeout_even_while_our_write_waits():
    stalled: list[asyncio.StreamWriter] = []

    async def accept_and_never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stalled.append(writer)

    server = await asyncio.start_server(accept_and_never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    lk = link(port)
    await lk.connect()
    started = time.monotonic()
    with pytest.raises(DeliveryError, match=r"no ACK within 0\.3 s for W1"):  # 32 MiB: more than the buffers
        await lk.exchange(message("W1", b"MSH|" + b"x" * (32 << 20)), timeout_s=0.3)
    assert 0.25 < time.monotonic() - started < 5
    for w in stalled:
        w.close()
    server.close()
    await server.wait_closed()
