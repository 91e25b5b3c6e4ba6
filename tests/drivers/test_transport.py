"""Transport specifics beyond the shared link contract: backpressure, device loss, errors, tracing."""

from __future__ import annotations

import asyncio
import os
import pty
import socket
import tty

import pytest

from drivers.errors import LinkClosed, LinkError
from drivers.transport import TRACE, Link, open_serial, open_tcp


def _pty() -> tuple[int, int, str]:
    master, slave = pty.openpty()
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


async def _read_exactly(link: Link, count: int) -> bytes:
    data = b""
    while len(data) < count:
        data += await link.read()
    return data


async def test_pty_link_moves_bytes_both_ways():
    master, slave, path = _pty()
    link = await open_serial(path, name="bed01", baudrate=19200)
    try:
        await link.write(b"0VER\r")
        assert os.read(master, 100) == b"0VER\r"
        os.write(master, b"\x0200S\x03")
        assert await _read_exactly(link, 5) == b"\x0200S\x03"
    finally:
        await link.close()
        os.close(master)
        os.close(slave)


async def test_pty_link_delivers_a_large_burst_completely_and_in_order():
    master, slave, path = _pty()
    link = await open_serial(path, name="burst")
    payload = bytes(range(256)) * 1024  # 256 KiB: more than the link's buffer limit

    def write_all() -> None:
        view = memoryview(payload)
        while view:
            view = view[os.write(master, view) :]

    writer = asyncio.get_running_loop().run_in_executor(None, write_all)  # blocks until we read
    try:
        received = await asyncio.wait_for(_read_exactly(link, len(payload)), 10)
        await writer
        assert received == payload
    finally:
        await link.close()
        os.close(master)
        os.close(slave)


async def test_pty_link_reports_link_closed_when_the_device_end_goes_away():
    master, slave, path = _pty()
    link = await open_serial(path, name="gone")
    os.write(master, b"last")
    await asyncio.sleep(0.05)
    os.close(master)
    os.close(slave)
    try:
        assert await _read_exactly(link, 4) == b"last"  # buffered bytes are delivered first
        with pytest.raises(LinkClosed):
            await asyncio.wait_for(link.read(), 2)
        assert link.closed
        with pytest.raises(LinkClosed):
            await link.write(b"x")
    finally:
        await link.close()


async def test_opening_a_missing_device_is_a_link_error_naming_the_path():
    with pytest.raises(LinkError) as caught:
        await open_serial("/dev/does-not-exist-pumpgw", name="bed09")
    assert "/dev/does-not-exist-pumpgw" in str(caught.value) and caught.value.link == "bed09"


async def test_wire_bytes_are_traced_per_direction_below_debug(caplog):
    master, slave, path = _pty()
    link = await open_serial(path, name="traced")
    caplog.set_level(TRACE, logger="pumpgw.wire.traced")
    try:
        await link.write(b"0\r")
        os.write(master, b"\x0200S\x03")
        await _read_exactly(link, 5)
    finally:
        await link.close()
        os.close(master)
        os.close(slave)
    records = {(r.name, r.levelno, r.getMessage()) for r in caplog.records}
    assert ("pumpgw.wire.traced.tx", TRACE, "30 0d") in records
    assert ("pumpgw.wire.traced.rx", TRACE, "02 30 30 53 03") in records


async def test_unreachable_socket_url_is_a_link_error():
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(LinkError):
        await open_serial(f"socket://127.0.0.1:{port}", name="nobody")


async def test_tcp_connect_refused_is_a_link_error():
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(LinkError):
        await open_tcp("127.0.0.1", port, name="rack", connect_timeout_s=2)


async def test_tcp_link_probes_a_silent_peer_with_short_keepalives():
    """A rack rebooted behind NAT leaves a half-open connection: keepalive finds it in ~25 s."""
    accepted: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    link = await open_tcp("127.0.0.1", port, name="rack")
    try:
        sock = link._writer.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
            interval = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
            probes = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
            assert idle + interval * probes <= 60  # not the kernel's 2 h + 9 x 75 s
    finally:
        await link.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
