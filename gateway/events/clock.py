"""When did it happen at the pump, on the gateway's clock (design.md §2.5, ihe-pcd.md §5, §8.2).

A poll reveals a change somewhere between two replies; the best point estimate is the moment
the pump produced the reply that showed it. ``received_at`` (gateway wall clock, NTP) is that
moment plus the reply's transmission latency. When the pump reports its own clock, each reply
gives an *observed offset* ``device_time - received_at = true_offset - latency``; latency is
never negative, so the largest observed offset among recent replies (a min-latency filter, as
NTP does) is the best estimate of the true offset, and

    event_time = device_time - estimated_offset = received_at - (estimated - observed)

which strips the extra latency of a slow reply and is never later than ``received_at``.

Offsets more than ``latency_tolerance`` above the current one are left out of the estimate:
they predate a small clock step (below the jump threshold) and would otherwise pull event
times early for a whole window. A change of observed offset beyond ``jump_threshold`` between
consecutive replies is a device clock change (IPEC ``MDC_EVT_DEVICE_TIME_CHANGED``,
ihe-pcd.md §8.3); the window restarts from the new offset. Slow drift never triggers it.

A naive ``device_time`` is read in ``received_at``'s zone: only *differences* of offsets are
used, so a constant zone error cancels out, while a DST change on a pump that shows local time
correctly surfaces as a clock change. Without ``device_time`` the event time is ``received_at``.
Bounded memory: a fixed-size window of offsets.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_JUMP_THRESHOLD = timedelta(seconds=60)
# Longest plausible reply latency (serial at 1200 baud, a slow rack); bounds the estimate's error.
DEFAULT_LATENCY_TOLERANCE = timedelta(seconds=5)
_WINDOW = 8


@dataclass(frozen=True, slots=True)
class ClockReading:
    """The event time for one reply, and the device clock change it revealed, if any."""

    event_time: datetime
    observed_offset: timedelta | None
    previous_offset: timedelta | None = None
    jumped: bool = False


class DeviceClock:
    """Per-pump device clock model: offset estimate and jump detection."""

    def __init__(
        self,
        *,
        jump_threshold: timedelta = DEFAULT_JUMP_THRESHOLD,
        latency_tolerance: timedelta = DEFAULT_LATENCY_TOLERANCE,
    ) -> None:
        self._jump_threshold = jump_threshold
        self._latency_tolerance = latency_tolerance
        self._offsets: deque[timedelta] = deque(maxlen=_WINDOW)
        self._last_offset: timedelta | None = None

    @property
    def offset(self) -> timedelta | None:
        """The last observed ``device_time - received_at``, or None if never reported."""
        return self._last_offset

    def read(self, received_at: datetime, device_time: datetime | None) -> ClockReading:
        if device_time is None:
            return ClockReading(event_time=received_at, observed_offset=None)
        if device_time.tzinfo is None:
            device_time = device_time.replace(tzinfo=received_at.tzinfo)
        observed = device_time - received_at
        previous = self._last_offset
        jumped = previous is not None and abs(observed - previous) > self._jump_threshold
        if jumped:
            self._offsets.clear()
        self._last_offset = observed
        self._offsets.append(observed)
        ceiling = observed + self._latency_tolerance
        estimate = max(o for o in self._offsets if o <= ceiling)
        return ClockReading(
            event_time=received_at - (estimate - observed),
            observed_offset=observed,
            previous_offset=previous,
            jumped=jumped,
        )
