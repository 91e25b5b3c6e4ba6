"""Serial devices and pseudo-terminals as a non-blocking file descriptor on the event loop.

Why not a thread: a tty or pty is a file descriptor the kernel can poll, so the event loop
watches it directly (``loop.add_reader``/``add_writer``) -- no hidden thread, cancellation
is immediate, and closing is synchronous. pyserial only opens the port and programs
termios (baud rate, 8N1, raw mode); it opens with ``O_NONBLOCK`` and we never call its
blocking read/write. (pyserial-asyncio does the same on POSIX, but is not a dependency.)

End of stream: on Linux a pty slave whose master was closed reads ``EIO``; an unplugged
USB adapter reads ``EIO``/``ENXIO`` or end-of-file. All of them become :class:`LinkClosed`.
"""

from __future__ import annotations

import asyncio
import os
from functools import partial

import serial

from drivers.errors import LinkClosed, LinkError
from drivers.transport.link import RxBuffer, WireTrace


class FdLink:
    """A :class:`~drivers.transport.link.Link` over an open, non-blocking pyserial port."""

    def __init__(self, port: serial.Serial, *, name: str) -> None:
        self.name = name
        self._port = port
        self._fd = port.fileno()
        self._loop = asyncio.get_running_loop()
        self._rx = RxBuffer(name)
        self._trace = WireTrace(name)
        self._write_lock = asyncio.Lock()
        self._reading = False
        self._closed = False
        self._resume_reading()

    @property
    def closed(self) -> bool:
        return self._closed or self._rx.closed

    def _resume_reading(self) -> None:
        if not self._reading and not self.closed:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(f"read failed: {exc.strerror or exc}")
            return
        if not data:
            self._lost("end of file")
            return
        self._trace.rx(data)
        self._rx.append(data)
        if self._rx.full:
            self._pause_reading()  # backpressure, not loss: the kernel holds the rest

    def _lost(self, reason: str) -> None:
        self._pause_reading()
        self._rx.close(reason)

    async def read(self, max_bytes: int = 4096) -> bytes:
        data = await self._rx.take(max_bytes)
        if not self._rx.full:
            self._resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        async with self._write_lock:
            view = memoryview(bytes(data))
            while view:
                if self.closed:
                    raise LinkClosed(self.name, "write on a closed link")
                try:
                    sent = os.write(self._fd, view)
                except (BlockingIOError, InterruptedError):
                    await self._writable()
                    continue
                except OSError as exc:
                    self._lost(f"write failed: {exc.strerror or exc}")
                    raise LinkClosed(self.name, f"write failed: {exc.strerror or exc}") from exc
                self._trace.tx(bytes(view[:sent]))
                view = view[sent:]

    async def _writable(self) -> None:
        ready = self._loop.create_future()
        self._loop.add_writer(self._fd, partial(_wake, ready))
        try:
            await ready
        finally:
            self._loop.remove_writer(self._fd)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pause_reading()
        self._rx.close("closed locally")
        self._port.close()


def open_fd_port(path: str, *, name: str, baudrate: int, bytesize: int, parity: str, stopbits: int) -> FdLink:
    """Open a device or pty path; pyserial programs termios, the loop does the I/O."""
    try:
        port = serial.Serial(
            port=path,
            baudrate=baudrate,
            bytesize=bytesize,
            parity=parity,
            stopbits=stopbits,
            timeout=0,
            exclusive=True,
        )
    except (serial.SerialException, ValueError, OSError) as exc:
        raise LinkError(name, f"cannot open {path}: {exc}") from exc
    return FdLink(port, name=name)


def _wake(ready: asyncio.Future[None]) -> None:
    """The writer callback: fired once per readiness, maybe after the waiter was cancelled."""
    if not ready.done():
        ready.set_result(None)
