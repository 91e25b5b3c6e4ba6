"""An NE-1000 line served on a pseudo-terminal: :class:`Ne1000Line` plus byte I/O.

Two owned tasks: the *replier* sends queued replies in order, each after its fault delay
(a slow pump delays the replies behind it too, as on a real line); the *ticker* runs the
safe-mode watchdog and auto-alarms every 0.1 s. ``stop()`` cancels and awaits both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from simulators.ne1000.faults import Faults
from simulators.ne1000.frontend import INTER_BYTE_TIMEOUT_S, Ne1000Line, Outgoing
from simulators.pty_endpoint import PtyEndpoint
from simulators.pump_model import SimulatedPump

_TICK_S = 0.1


class Ne1000PtySimulator:
    """One or several simulated pumps (addresses 0-99) on one pty line."""

    def __init__(
        self,
        pumps: SimulatedPump | dict[int, SimulatedPump],
        *,
        faults: Faults | dict[int, Faults] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # ``clock`` drives the safe-mode watchdog; reply delays use the event loop's time.
        by_address = {0: pumps} if isinstance(pumps, SimulatedPump) else dict(pumps)
        if isinstance(faults, Faults):
            faults = {address: faults for address in by_address}
        self.line = Ne1000Line(by_address, faults=faults, clock=clock)
        self._endpoint = PtyEndpoint(self._on_data)
        self._queue: asyncio.Queue[tuple[float, Outgoing]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_rx = 0.0

    @property
    def path(self) -> str:
        return self._endpoint.path

    def faults(self, address: int = 0) -> Faults:
        """The live fault settings of the pump at ``address`` (mutate to inject)."""
        return self.line.pumps[address].faults

    async def start(self) -> str:
        """Open the pty and serve; returns the slave path a client opens."""
        if self._tasks:
            raise RuntimeError("simulator already started")
        path = self._endpoint.open()
        self._tasks = [
            asyncio.create_task(self._replier(), name=f"ne1000-sim-replier {path}"),
            asyncio.create_task(self._ticker(), name=f"ne1000-sim-ticker {path}"),
        ]
        return path

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._endpoint.close()

    async def __aenter__(self) -> Ne1000PtySimulator:
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
            self._queue.put_nowait((now + item.delay_s, item))

    async def _replier(self) -> None:
        while True:
            due, item = await self._queue.get()
            wait = due - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._endpoint.write(item.data)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            self._enqueue(self.line.tick(), asyncio.get_running_loop().time())
