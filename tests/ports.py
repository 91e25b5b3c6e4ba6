"""Free loopback ports for the servers tests start (brokers, PostgreSQL, NATS, HTTP, MLLP).

The kernel picks the port; the socket is closed before the server binds it, so another
process could take it in between. The suite's two workers (pytest-xdist) make that window
matter a little more: bind(0) hands out ports from a random point of the ephemeral range, so a
clash needs both workers to draw the same port within milliseconds.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def distinct_free_ports(count: int) -> list[int]:
    """``count`` different free ports: the sockets are held open together while the kernel picks
    them (one free_port() after another may hand out the same port twice)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()
