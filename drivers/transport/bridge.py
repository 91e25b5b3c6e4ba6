"""pyserial URL transports (``rfc2217://``, ``socket://`` ...) through one owned reader thread.

Why a thread here: pyserial's URL handlers hide their socket and Telnet negotiation behind a
blocking API, so there is no descriptor to give the event loop. One reader thread per link
does blocking reads with a short timeout and hands bytes to the loop with
``call_soon_threadsafe``; writes go through a single-worker executor so they stay in order.
Both are owned by the link: ``close()`` stops and joins them. When the loop-side buffer is
full the reader thread waits (backpressure) instead of dropping bytes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import serial

from drivers.errors import LinkClosed, LinkError
from drivers.transport.link import RxBuffer, WireTrace

_READ_SLICE_S = 0.05
"""How long one blocking read waits, hence how fast ``close()`` stops the thread."""


class ThreadBridgeLink:
    """A :class:`~drivers.transport.link.Link` over a pyserial URL port."""

    def __init__(self, port: serial.SerialBase, *, name: str) -> None:
        self.name = name
        self._port = port
        self._loop = asyncio.get_running_loop()
        self._rx = RxBuffer(name)
        self._trace = WireTrace(name)
        self._stop = threading.Event()
        self._room = threading.Event()
        self._room.set()
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"pumpgw-tx-{name}")
        self._write_lock = asyncio.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._reader, name=f"pumpgw-rx-{name}", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed or self._rx.closed

    def _reader(self) -> None:
        while not self._stop.is_set():
            if not self._room.wait(_READ_SLICE_S):
                continue
            try:
                data = self._port.read(max(1, self._port.in_waiting))
            except Exception as exc:  # pyserial raises SerialException, OSError, socket errors
                if not self._stop.is_set():
                    self._loop.call_soon_threadsafe(self._rx.close, f"read failed: {exc}")
                return
            if data:
                self._loop.call_soon_threadsafe(self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        self._trace.rx(data)
        self._rx.append(data)
        if self._rx.full:
            self._room.clear()

    async def read(self, max_bytes: int = 4096) -> bytes:
        data = await self._rx.take(max_bytes)
        if not self._rx.full:
            self._room.set()
        return data

    async def write(self, data: bytes) -> None:
        async with self._write_lock:
            if self.closed:
                raise LinkClosed(self.name, "write on a closed link")
            try:
                await self._loop.run_in_executor(self._writer, self._port.write, bytes(data))
            except Exception as exc:
                self._rx.close(f"write failed: {exc}")
                raise LinkClosed(self.name, f"write failed: {exc}") from exc
            self._trace.tx(bytes(data))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._room.set()
        self._rx.close("closed locally")
        await asyncio.to_thread(self._thread.join)
        self._writer.shutdown(wait=True)
        self._port.close()


async def open_url_port(
    url: str, *, name: str, baudrate: int, bytesize: int, parity: str, stopbits: int
) -> ThreadBridgeLink:
    try:
        port = serial.serial_for_url(
            url,
            do_not_open=True,
            baudrate=baudrate,
            bytesize=bytesize,
            parity=parity,
            stopbits=stopbits,
            timeout=_READ_SLICE_S,
        )
        await asyncio.to_thread(port.open)
    except (serial.SerialException, ValueError, OSError) as exc:
        raise LinkError(name, f"cannot open {url}: {exc}") from exc
    return ThreadBridgeLink(port, name=name)
