"""How late the event loop runs: the figure that says whether something blocked it.

Every stall of the loop lands on alarms (an alarm waits for the loop to send it) and on
polls. The monitor sleeps a short tick and measures how much later than asked it woke up;
that delay is the loop's lag. A lag above ``threshold_s`` (20 ms: the budget issue 20 set
for any single piece of work on the loop) is logged at WARNING, at most once per
``log_every_s`` with the worst figure and the count since the last line.

Figures are plain attributes (``last_s``, ``max_s``, ``exceeded``) and an optional
``on_sample(lag_s)`` callback, for whatever exports metrics; this module keeps none of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.log import get_logger

THRESHOLD_S = 0.020
TICK_S = 0.25


class LoopLagMonitor:
    def __init__(
        self,
        *,
        threshold_s: float = THRESHOLD_S,
        tick_s: float = TICK_S,
        log_every_s: float = 60.0,
        on_sample: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold_s = threshold_s
        self.tick_s = tick_s
        self.log_every_s = log_every_s
        self.on_sample = on_sample
        self.clock = clock
        self.log = get_logger("pumpgw.looplag")
        self.last_s = 0.0  # the latest sample
        self.max_s = 0.0  # worst since start
        self.samples = 0
        self.exceeded = 0  # samples above the threshold since start
        self._window_max = 0.0
        self._window_count = 0
        self._logged_at = float("-inf")

    def record(self, lag_s: float) -> None:
        """Account one sample (the run loop's; also usable by a test or another timer)."""
        lag_s = max(0.0, lag_s)
        self.last_s = lag_s
        self.samples += 1
        self.max_s = max(self.max_s, lag_s)
        if self.on_sample is not None:
            try:
                self.on_sample(lag_s)
            except Exception:
                self.log.exception("loop lag callback failed")
        if lag_s <= self.threshold_s:
            return
        self.exceeded += 1
        self._window_count += 1
        self._window_max = max(self._window_max, lag_s)
        now = self.clock()
        if now - self._logged_at >= self.log_every_s:
            self.log.warning(
                "event loop ran late",
                worst_ms=round(self._window_max * 1000, 1),
                times=self._window_count,
                threshold_ms=round(self.threshold_s * 1000, 1),
            )
            self._logged_at, self._window_max, self._window_count = now, 0.0, 0

    async def run(self) -> None:
        """Sample forever (the supervisor owns the task and cancels it)."""
        while True:
            asked = self.clock()
            await asyncio.sleep(self.tick_s)
            self.record(self.clock() - asked - self.tick_s)
