"""The one retry-delay policy of the gateway: exponential growth with full jitter, capped.

Every reconnect and restart (MQTT session, pump links, MLLP lanes, supervised services) waits
by this policy; only the (initial, cap) pair differs and comes from configuration. Full jitter
(a uniform draw in ``[0, min(cap, initial * 2**attempt)]``) spreads a ward's gateways apart
after a broker or EHR restart instead of having them reconnect in lock-step. Errors a retry
cannot fix (bad credentials, a refused certificate) wait the cap itself, so a misconfigured
gateway knocks at most once per cap. The curve is tenacity's, so loops that retry through
``tenacity.AsyncRetrying`` (:func:`jittered`) and loops that count attempts themselves
(:class:`Backoff`) wait alike.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import wait_exponential, wait_random_exponential


def jittered(initial_s: float, max_s: float) -> wait_random_exponential:
    """The policy as a tenacity ``wait`` for ``AsyncRetrying``."""
    _check(initial_s, max_s)
    return wait_random_exponential(multiplier=initial_s, max=max_s)


@dataclass
class _Attempt:
    """The one field of tenacity's ``RetryCallState`` its wait strategies read."""

    attempt_number: int


class Backoff:
    """The policy for a loop that counts its own attempts (reset after a success)."""

    def __init__(self, initial_s: float, max_s: float, *, rand: Callable[[], float] = random.random) -> None:
        _check(initial_s, max_s)
        self.initial_s = initial_s
        self.max_s = max_s
        self._curve = wait_exponential(multiplier=initial_s, max=max_s)
        self._rand = rand
        self.attempt = 0

    def ceiling(self, attempt: int) -> float:
        """The largest delay of ``attempt`` (0-based); never above the cap, never overflows."""
        if attempt >= 64:
            return self.max_s
        # _Attempt stands in for tenacity's RetryCallState: attempt_number is all the curve reads
        return float(self._curve(_Attempt(attempt + 1)))  # type: ignore[arg-type]

    def next_delay(self) -> float:
        delay = self.ceiling(self.attempt) * self._rand()
        self.attempt += 1
        return delay

    def longest(self) -> float:
        self.attempt += 1
        return self.max_s

    def reset(self) -> None:
        self.attempt = 0


def _check(initial_s: float, max_s: float) -> None:
    if not 0 < initial_s <= max_s:
        raise ValueError(f"backoff needs 0 < initial_s <= max_s, got {initial_s} and {max_s}")
