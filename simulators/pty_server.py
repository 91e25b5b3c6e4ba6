"""A simulated serial line on a pseudo-terminal that can be unplugged and plugged back.

Any pure pump-side *line* (``receive(bytes) -> [Outgoing]``, ``tick() -> [Outgoing]``,
``discard_partial()``, ``pending``) is served here: the Alaris front-end and the NE-1000
:class:`~simulators.ne1000.frontend.Ne1000Line` alike, so disconnects work the same for both.

Disconnect/reconnect: closing the pty master makes the gateway's next read fail (``EIO``,
its ``LinkClosed``); a pty cannot be reopened under the same ``/dev/pts/N``, so a server
given ``link_path`` keeps a symlink there (like socat's ``PTY,link=``) and re-points it
atomically at the new pty on :meth:`reconnect`. The gateway config names the symlink.

Two owned tasks: the *replier* sends queued replies in order, each after its fault delay
(a slow pump delays the replies behind it, as on a real line); the *ticker* runs
line-side timers every 0.1 s. ``stop()`` cancels and awaits both and removes the symlink.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Protocol, Self

from simulators.faults import Outgoing
from simulators.pty_endpoint import PtyEndpoint

_TICK_S = 0.1
INTER_BYTE_TIMEOUT_S = 0.5  # a partial frame older than this is discarded (NE-1000 §2.2)


class Line(Protocol):
    @property
    def pending(self) -> int: ...
    def receive(self, data: bytes) -> list[Outgoing]: ...
    def tick(self) -> list[Outgoing]: ...
    def discard_partial(self) -> None: ...


class PtyServer:
    """Serves one :class:`Line` on a pty; ``path`` is the symlink if given, else the pty."""

    def __init__(self, line: Line, *, link_path: str | None = None, name: str = "", tick_s: float = _TICK_S) -> None:
        self.line = line
        self.tick_s = tick_s
        self.link_path = link_path
        self.name = name or (link_path or "pty")
        self._endpoint: PtyEndpoint | None = None
        self._queue: asyncio.Queue[tuple[float, int, Outgoing]] = asyncio.Queue()
        self._generation = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._last_rx = 0.0
        self.pty_path = ""
        self.disconnects = 0

    @property
    def path(self) -> str:
        return self.link_path or self.pty_path

    @property
    def connected(self) -> bool:
        return self._endpoint is not None

    async def start(self) -> str:
        if self._tasks:
            raise RuntimeError(f"pty server {self.name} already started")
        self._open()
        self._tasks = [
            asyncio.create_task(self._replier(), name=f"pty-sim-replier {self.name}"),
            asyncio.create_task(self._ticker(), name=f"pty-sim-ticker {self.name}"),
        ]
        return self.path

    def _open(self) -> None:
        endpoint = PtyEndpoint(self._on_data)
        self.pty_path = endpoint.open()
        self._endpoint = endpoint
        if self.link_path:
            tmp = f"{self.link_path}.tmp{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self.pty_path, tmp)
            os.replace(tmp, self.link_path)

    def disconnect(self) -> None:
        """Unplug: close the pty (the client reads EIO); queued replies are lost with it.

        The symlink goes too, as a /dev/serial/by-id link does when an adapter is unplugged:
        left in place it would name a pts number the kernel may hand to another pump's pty,
        and a client reopening it would talk to the wrong pump.
        """
        if self._endpoint is None:
            return
        if self.link_path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.link_path)
        self._endpoint.close()
        self._endpoint = None
        self._generation += 1
        self.disconnects += 1
        self.line.discard_partial()

    def reconnect(self) -> None:
        """Plug back in: a fresh pty behind the same symlink."""
        if self._endpoint is None and self._tasks:
            self._open()

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            if self._endpoint is not None:
                self._endpoint.close()
                self._endpoint = None
            if self.link_path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.link_path)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _on_data(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        if self.line.pending and now - self._last_rx > INTER_BYTE_TIMEOUT_S:
            self.line.discard_partial()
        self._last_rx = now
        self._enqueue(self.line.receive(data), now)

    def _enqueue(self, items: list[Outgoing], now: float) -> None:
        for item in items:
            self._queue.put_nowait((now + item.delay_s, self._generation, item))

    async def _replier(self) -> None:
        while True:
            due, generation, item = await self._queue.get()
            wait = due - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
            if generation == self._generation and self._endpoint is not None:
                await self._endpoint.write(item.data)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self._enqueue(self.line.tick(), asyncio.get_running_loop().time())
