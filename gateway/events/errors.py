"""Errors of the event layer: a snapshot the tracker refuses to diff.

They signal a bug upstream (a driver or the poller handing over the wrong data), never a pump
condition; the poller logs them with the pump id and keeps polling. The tracker's state is left
unchanged when it raises, so the next good snapshot is diffed against the last good one.
"""

from __future__ import annotations

from datetime import datetime

from gateway.errors import BadInput


class EventError(BadInput):
    """Base of the event layer's errors."""


class ForeignSnapshotError(EventError):
    """A snapshot of another pump was handed to this pump's tracker."""

    def __init__(self, expected_pump_id: str, got_pump_id: str) -> None:
        self.expected_pump_id = expected_pump_id
        self.got_pump_id = got_pump_id
        super().__init__(
            f"pump {expected_pump_id}: snapshot belongs to another pump: "
            f"expected pump_id {expected_pump_id!r}, got {got_pump_id!r}"
        )


class NaiveTimestampError(EventError):
    """A gateway-clock time without a UTC offset: event times must carry one (design.md §2.5)."""

    def __init__(self, pump_id: str, field_name: str, value: datetime) -> None:
        self.pump_id = pump_id
        self.field_name = field_name
        self.value = value
        super().__init__(f"pump {pump_id}: {field_name} must be timezone-aware, got naive {value.isoformat()}")
