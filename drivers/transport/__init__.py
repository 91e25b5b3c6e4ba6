"""Byte transports: serial device or pty paths, pyserial URLs, TCP.

One factory per kind of endpoint, keyed by the URL (style.md, "Transports"):

* a path (``/dev/ttyUSB0``, a pty slave) -> :class:`FdLink`, event-loop I/O on the fd;
* ``rfc2217://host:port``, ``socket://host:port`` or any other pyserial URL ->
  :class:`ThreadBridgeLink`, pyserial's blocking handler behind one owned reader thread;
* :func:`open_tcp` -> :class:`TcpLink` on asyncio streams.
"""

from __future__ import annotations

from drivers.transport.bridge import ThreadBridgeLink, open_url_port
from drivers.transport.fd import FdLink, open_fd_port
from drivers.transport.link import TRACE, Link, WireTrace
from drivers.transport.tcp import TcpLink, open_tcp

__all__ = [
    "TRACE",
    "FdLink",
    "Link",
    "TcpLink",
    "ThreadBridgeLink",
    "WireTrace",
    "open_serial",
    "open_tcp",
]


async def open_serial(
    url: str,
    *,
    name: str,
    baudrate: int = 9600,
    bytesize: int = 8,
    parity: str = "N",
    stopbits: int = 1,
) -> Link:
    """Open a serial link by path or pyserial URL; raises :class:`~drivers.errors.LinkError`."""
    if "://" in url:
        return await open_url_port(
            url, name=name, baudrate=baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits
        )
    return open_fd_port(url, name=name, baudrate=baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits)
