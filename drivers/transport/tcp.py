"""Plain TCP links (a pump rack such as a SpaceCom) on asyncio streams.

Keepalive is on with short probe times: a rack that reboots behind NAT leaves a half-open
connection the kernel would otherwise keep for ~15 minutes (retransmission give-up), during
which the link looks open and only replies time out.
"""

from __future__ import annotations

import asyncio
import socket

from drivers.errors import LinkClosed, LinkError
from drivers.transport.link import WireTrace


class TcpLink:
    """A :class:`~drivers.transport.link.Link` over an asyncio stream pair.

    ``StreamReader`` keeps unread bytes across a cancelled ``read()``, and its own limit
    pauses the socket (backpressure), so nothing is dropped.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, name: str) -> None:
        self.name = name
        self._reader = reader
        self._writer = writer
        self._trace = WireTrace(name)
        self._write_lock = asyncio.Lock()
        self._closed = False
        self._eof = False

    @property
    def closed(self) -> bool:
        return self._closed or self._eof

    async def read(self, max_bytes: int = 4096) -> bytes:
        if self._closed:
            raise LinkClosed(self.name, "closed locally")
        try:
            data = await self._reader.read(max_bytes)
        except OSError as exc:
            self._eof = True
            raise LinkClosed(self.name, f"read failed: {exc}") from exc
        if not data:
            self._eof = True
            raise LinkClosed(self.name, "peer closed the connection")
        self._trace.rx(data)
        return data

    async def write(self, data: bytes) -> None:
        async with self._write_lock:
            if self.closed or self._writer.is_closing():
                raise LinkClosed(self.name, "write on a closed link")
            try:
                self._writer.write(data)
                await self._writer.drain()
            except OSError as exc:
                self._eof = True
                raise LinkClosed(self.name, f"write failed: {exc}") from exc
            self._trace.tx(bytes(data))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass  # the peer already reset the connection; it is closed either way


KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_PROBES = 3
"""A silent peer is declared dead after about idle + interval * probes = 25 s."""


def enable_keepalive(sock: socket.socket) -> None:
    """SO_KEEPALIVE with short probes (the TCP_KEEP* options exist on Linux and recent macOS)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_S),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
    ):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


async def open_tcp(host: str, port: int, *, name: str, connect_timeout_s: float = 10.0) -> TcpLink:
    """Connect to ``host:port``; raises :class:`LinkError` on failure or timeout."""
    try:
        async with asyncio.timeout(connect_timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError as exc:
        raise LinkError(name, f"connect to {host}:{port} timed out after {connect_timeout_s:g} s") from exc
    except OSError as exc:
        raise LinkError(name, f"cannot connect to {host}:{port}: {exc}") from exc
    enable_keepalive(writer.get_extra_info("socket"))
    return TcpLink(reader, writer, name=name)
