"""One link contract, re-run against every transport (python-can's back-to-back idea).

Each transport talks to a real echo peer: a pty device end, a loopback TCP server reached as
``socket://`` and as plain TCP, and an RFC 2217 server built on pyserial's own PortManager.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import serial
import serial.rfc2217

from drivers.errors import LinkClosed
from drivers.transport import Link, open_serial, open_tcp
from simulators.pty_endpoint import PtyEndpoint

Peer = tuple[Link, Callable[[], Awaitable[None]]]  # the link, and "the far end goes away"


@contextlib.asynccontextmanager
async def pty_peer() -> AsyncIterator[Peer]:
    writes: set[asyncio.Task[None]] = set()
    endpoint: PtyEndpoint

    def echo(data: bytes) -> None:
        task = asyncio.create_task(endpoint.write(data))
        writes.add(task)
        task.add_done_callback(writes.discard)

    endpoint = PtyEndpoint(echo)
    path = endpoint.open()
    link = await open_serial(path, name="pty")

    async def hang_up() -> None:
        await asyncio.gather(*writes)
        endpoint.close()

    try:
        yield link, hang_up
    finally:
        await link.close()
        await asyncio.gather(*writes, return_exceptions=True)
        endpoint.close()


@contextlib.asynccontextmanager
async def tcp_echo_server() -> AsyncIterator[tuple[int, Callable[[], Awaitable[None]]]]:
    peers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass  # the client went away mid-echo; nothing to answer
        finally:
            writer.close()

    async def hang_up() -> None:
        for writer in peers:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        try:
            yield server.sockets[0].getsockname()[1], hang_up
        finally:
            for writer in peers:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()


@contextlib.asynccontextmanager
async def socket_url_peer() -> AsyncIterator[Peer]:
    async with tcp_echo_server() as (port, hang_up):
        link = await open_serial(f"socket://127.0.0.1:{port}", name="socket")
        try:
            yield link, hang_up
        finally:
            await link.close()


@contextlib.asynccontextmanager
async def tcp_peer() -> AsyncIterator[Peer]:
    async with tcp_echo_server() as (port, hang_up):
        link = await open_tcp("127.0.0.1", port, name="tcp")
        try:
            yield link, hang_up
        finally:
            await link.close()


class Rfc2217EchoServer:
    """A serial device server: pyserial's RFC 2217 PortManager; the "device" echoes.

    The loop:// port only takes the line settings the client negotiates; echoed bytes go
    straight back (loop:// holds just 4 KiB and would block this thread).
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="rfc2217-echo")
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(5)
        conn, _ = self.listener.accept()
        conn.settimeout(0.02)
        device = serial.serial_for_url("loop://", timeout=0)

        class Connection:
            def write(self, data: bytes) -> None:
                conn.sendall(data)

        manager = serial.rfc2217.PortManager(device, Connection())
        try:
            while not self.stop.is_set():
                try:
                    data = conn.recv(65536)
                    if not data:
                        break
                except TimeoutError:
                    continue
                echoed = b"".join(manager.filter(data))
                if echoed:
                    conn.sendall(b"".join(manager.escape(echoed)))
        finally:
            conn.close()
            device.close()

    async def hang_up(self) -> None:
        self.stop.set()
        await asyncio.to_thread(self.thread.join)

    async def close(self) -> None:
        await self.hang_up()
        self.listener.close()


@contextlib.asynccontextmanager
async def rfc2217_peer() -> AsyncIterator[Peer]:
    server = Rfc2217EchoServer()
    try:
        link = await open_serial(f"rfc2217://127.0.0.1:{server.port}", name="rfc2217", baudrate=19200)
        try:
            yield link, server.hang_up
        finally:
            await link.close()
    finally:
        await server.close()


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217")

PEERS = {"pty": pty_peer, "socket-url": socket_url_peer, "tcp": tcp_peer, "rfc2217": rfc2217_peer}
transports = pytest.mark.parametrize("kind", sorted(PEERS))


async def read_exactly(link: Link, count: int) -> bytes:
    data = b""
    while len(data) < count:
        data += await link.read()
    return data


@transports
async def test_bytes_come_back_complete_and_in_order_including_every_byte_value(kind):
    payload = bytes(range(256)) * 64  # 16 KiB, with 0xFF (Telnet IAC) and control bytes
    async with PEERS[kind]() as (link, _):
        await link.write(payload)
        assert await asyncio.wait_for(read_exactly(link, len(payload)), 10) == payload


@transports
async def test_a_cancelled_read_loses_no_bytes(kind):
    async with PEERS[kind]() as (link, _):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await link.read()
        await link.write(b"0VER\r")
        assert await asyncio.wait_for(read_exactly(link, 5), 5) == b"0VER\r"


@transports
async def test_the_far_end_going_away_is_link_closed(kind):
    async with PEERS[kind]() as (link, hang_up):
        await link.write(b"x")
        assert await asyncio.wait_for(read_exactly(link, 1), 5) == b"x"
        await hang_up()
        with pytest.raises(LinkClosed):
            await asyncio.wait_for(read_exactly(link, 1), 5)
        assert link.closed


@transports
async def test_after_close_reads_and_writes_raise_link_closed(kind):
    async with PEERS[kind]() as (link, _):
        pending = asyncio.create_task(link.read())
        await asyncio.sleep(0.01)
        await link.close()
        assert link.closed
        if kind != "tcp":  # asyncio streams: a pending read ends when the transport closes
            with pytest.raises(LinkClosed):
                await asyncio.wait_for(pending, 2)
        else:
            with contextlib.suppress(LinkClosed):
                await asyncio.wait_for(pending, 2)
        with pytest.raises(LinkClosed):
            await link.read()
        with pytest.raises(LinkClosed):
            await link.write(b"x")
        await link.close()  # idempotent
