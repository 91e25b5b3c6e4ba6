"""Each pump's own state on a shared link: when it is due, how long it was silent, and the
alarms it acknowledged that no snapshot has carried yet.

A link carries several pumps, each with its own poll interval and its own silence counter,
so one dead pump on a rack never marks its neighbours lost (pymodbus #1654 shows the
opposite). Drivers come and go with the link; alarms a pump already acknowledged pass from
one driver to the next (§0 rule 4) and are never dropped without an ERROR line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from drivers.base import PumpDriver
from drivers.model import Alarm
from gateway.config.model import PumpConfig


@dataclass
class PumpState:
    config: PumpConfig
    driver: PumpDriver | None = None
    next_poll: float = 0.0
    last_ok: float = field(default_factory=time.monotonic)
    last_identify: float = float("-inf")
    lost: bool = False
    failures: int = 0
    timeouts: int = 0  # consecutive reply timeouts (any answer resets it)
    last_poll_at: datetime | None = None  # wall clock of the last good poll (status page)
    carried_alarms: tuple[Alarm, ...] = ()  # acknowledged at the pump, not yet in a snapshot
    sink_failures: int = 0  # consecutive snapshots the pipeline could not process for this pump

    def drop_driver(self) -> None:
        """The link is going: keep the alarms the pump already acknowledged for the next
        driver (§0 rule 4), then forget this one."""
        if self.driver is not None:
            self.carried_alarms = self.carried_alarms + self.driver.unreported_alarms
        self.driver = None

    def hand_over_alarms(self, log: structlog.stdlib.BoundLogger) -> None:
        """Give the new driver the alarms its predecessor had not yet put in a snapshot."""
        assert self.driver is not None
        carried, self.carried_alarms = self.carried_alarms, ()
        if not carried:
            return
        log.warning(
            "unreported alarms carried over to the new driver", pump=self.config.id, alarms=[a.code for a in carried]
        )
        for alarm in self.driver.adopt_alarms(carried):
            log.error(
                "alarm dropped: the new driver cannot carry it", pump=self.config.id, alarm=alarm.code, kind=alarm.kind
            )

    def report_alarms_on_stop(self, log: structlog.stdlib.BoundLogger) -> None:
        """The poller is being stopped: alarms not yet in a snapshot go no further."""
        for alarm in self.carried_alarms + (self.driver.unreported_alarms if self.driver else ()):
            log.error(
                "poller stopped before an acknowledged alarm was reported",
                pump=self.config.id,
                alarm=alarm.code,
                kind=alarm.kind,
            )


def next_slot(scheduled: float, now: float, interval: float) -> float:
    """When to poll next after a poll due at ``scheduled`` ran at ``now``: on a fixed grid.

    A poll that ran late (the loop was busy, the link slow) is late, not lost: the next one
    stays on the grid (``scheduled + interval``), so the rate over a minute is the configured
    one. Only when the poll is a whole interval or more behind (the first poll, after a
    reconnect, a link slower than its interval) does the grid restart from now -- catching up
    several polls in a burst would only load the serial line.
    """
    if now - scheduled < interval:
        return scheduled + interval
    return now + interval
