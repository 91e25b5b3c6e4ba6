"""Reconnect delays: exponential with full jitter and a cap.

Full jitter (a uniform draw in ``[0, min(cap, initial * 2**attempt)]``) spreads a ward's
gateways apart after a broker restart instead of having them reconnect in lock-step.
Errors a retry cannot fix (bad credentials) use the cap itself, so a misconfigured gateway
knocks on the broker at most once per ``max_backoff_s``.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(self, initial_s: float, max_s: float, *, rand: Callable[[], float] = random.random) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"backoff needs 0 < initial_s <= max_s, got {initial_s} and {max_s}")
        self.initial_s = initial_s
        self.max_s = max_s
        self._rand = rand
        self.attempt = 0

    def ceiling(self, attempt: int) -> float:
        """The largest delay of ``attempt`` (0-based); never above the cap, never overflows."""
        if attempt >= 64:
            return self.max_s
        return min(self.max_s, self.initial_s * (2**attempt))

    def next_delay(self) -> float:
        delay = self.ceiling(self.attempt) * self._rand()
        self.attempt += 1
        return delay

    def longest(self) -> float:
        self.attempt += 1
        return self.max_s

    def reset(self) -> None:
        self.attempt = 0
