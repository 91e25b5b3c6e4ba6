"""The byte-link contract shared by every transport, and what all of them reuse.

A :class:`Link` moves bytes and reports loss of the connection; it knows no protocol.
Received bytes land in an :class:`RxBuffer` as soon as the OS hands them over, so a
cancelled ``read()`` (a driver's request timeout) never loses bytes: the next ``read()``
returns them. The buffer is bounded by *pausing the producer* (backpressure), never by
discarding: design §2 invariant 8 bounds memory, invariant 6 forbids silent loss.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, runtime_checkable

from drivers.errors import LinkClosed, LinkError

TRACE = 5
"""Log level for raw wire bytes, below DEBUG (style.md: zigpy-znp's TRACE)."""
logging.addLevelName(TRACE, "WIRE")  # shown as "wire" in logs: the pumpgw.wire.* loggers' level

RX_LIMIT_BYTES = 64 * 1024
"""Unread bytes held per link before the producer is paused."""


@runtime_checkable
class Link(Protocol):
    """A bidirectional byte stream to one pump (or one multidrop line)."""

    name: str

    @property
    def closed(self) -> bool: ...

    async def write(self, data: bytes) -> None:
        """Send all of ``data``; raises :class:`LinkClosed` or :class:`LinkError`."""

    async def read(self, max_bytes: int = 4096) -> bytes:
        """Wait for at least one byte; raises :class:`LinkClosed` once drained and closed."""

    async def close(self) -> None:
        """Release the link; idempotent. Pending and later reads raise :class:`LinkClosed`."""


async def write_bounded(link: Link, data: bytes, timeout_s: float) -> None:
    """``link.write(data)`` within ``timeout_s``; a stalled write is a :class:`LinkError`."""
    try:
        async with asyncio.timeout(timeout_s):
            await link.write(data)
    except TimeoutError:
        raise LinkError(link.name, f"write of {len(data)} byte(s) stalled for {timeout_s:g} s") from None


class WireTrace:
    """Per-direction raw byte tracing: loggers ``pumpgw.wire.<name>.rx`` / ``.tx`` at TRACE.

    Raw traffic can contain patient data (design §2 invariant 7), hence a level below DEBUG
    that an operator must enable on purpose.
    """

    def __init__(self, name: str) -> None:
        self._rx = logging.getLogger(f"pumpgw.wire.{name}.rx")
        self._tx = logging.getLogger(f"pumpgw.wire.{name}.tx")

    def rx(self, data: bytes) -> None:
        if self._rx.isEnabledFor(TRACE):
            self._rx.log(TRACE, "%s", data.hex(" "))

    def tx(self, data: bytes) -> None:
        if self._tx.isEnabledFor(TRACE):
            self._tx.log(TRACE, "%s", data.hex(" "))


class RxBuffer:
    """Received bytes waiting for ``read()``; lives on the event loop thread only."""

    def __init__(self, name: str, limit: int = RX_LIMIT_BYTES) -> None:
        self._name = name
        self._limit = limit
        self._data = bytearray()
        self._ready = asyncio.Event()
        self._closed_reason: str | None = None

    @property
    def full(self) -> bool:
        return len(self._data) >= self._limit

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    def append(self, data: bytes) -> None:
        self._data += data
        self._ready.set()

    def close(self, reason: str) -> None:
        """Mark the end of the stream; bytes already buffered are still delivered first."""
        if self._closed_reason is None:
            self._closed_reason = reason
        self._ready.set()

    async def take(self, max_bytes: int) -> bytes:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        while not self._data:
            if self._closed_reason is not None:
                raise LinkClosed(self._name, self._closed_reason)
            self._ready.clear()
            await self._ready.wait()
        chunk = bytes(self._data[:max_bytes])
        del self._data[:max_bytes]
        return chunk
