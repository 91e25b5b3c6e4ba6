"""The device end of a pseudo-terminal, on the event loop (shared by protocol simulators).

``pty.openpty()`` gives a master (the simulated pump's side) and a slave whose path the
gateway opens like a serial port. The slave is set raw so no byte is translated or echoed.
The simulator keeps its own slave descriptor open for its whole life: otherwise the master
reads ``EIO`` whenever no client has the slave open, and a client that reconnects would
find the line dead. Closing both ends makes a client's next read fail (its LinkClosed).
"""

from __future__ import annotations

import asyncio
import os
import pty
import tty
from collections.abc import Callable
from functools import partial


class PtyEndpoint:
    """Owns one pty pair; hands received bytes to ``on_data`` and writes replies."""

    def __init__(self, on_data: Callable[[bytes], None]) -> None:
        self._on_data = on_data
        self._master: int | None = None
        self._slave: int | None = None
        self.path = ""
        self._write_lock = asyncio.Lock()

    def open(self) -> str:
        master, slave = pty.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        asyncio.get_running_loop().add_reader(master, self._on_readable)
        return self.path

    @property
    def is_open(self) -> bool:
        return self._master is not None

    def _on_readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO while no slave is open; we hold our own, so this is transient
        if data:
            self._on_data(data)

    async def write(self, data: bytes) -> None:
        """Write all of ``data`` (waits while the client is not reading)."""
        async with self._write_lock:
            view = memoryview(data)
            while view and self._master is not None:
                try:
                    sent = os.write(self._master, view)
                except (BlockingIOError, InterruptedError):
                    await self._writable()
                    continue
                view = view[sent:]

    async def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        fd = self._master
        assert fd is not None
        loop.add_writer(fd, partial(_wake, ready))
        try:
            await ready
        finally:
            loop.remove_writer(fd)

    def close(self) -> None:
        if self._master is None:
            return
        asyncio.get_running_loop().remove_reader(self._master)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None


def _wake(ready: asyncio.Future[None]) -> None:
    """The writer callback: fired once per readiness, maybe after the waiter was cancelled."""
    if not ready.done():
        ready.set_result(None)
