"""An NE-1000 line served on a pseudo-terminal: :class:`Ne1000Line` on a :class:`PtyServer`.

The generic server does the byte I/O, the reply timing and the inter-byte timeout; its
*ticker* runs the safe-mode watchdog and auto-alarms every 0.1 s. This class only builds
the line from one pump or an address -> pump map and exposes each pump's faults.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from simulators.ne1000.faults import Faults
from simulators.ne1000.frontend import Ne1000Line
from simulators.pty_server import PtyServer
from simulators.pump_model import SimulatedPump


class Ne1000PtySimulator(PtyServer):
    """One or several simulated pumps (addresses 0-99) on one pty line."""

    line: Ne1000Line

    def __init__(
        self,
        pumps: SimulatedPump | dict[int, SimulatedPump],
        *,
        faults: Faults | dict[int, Faults] | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "ne1000-sim",
    ) -> None:
        # ``clock`` drives the safe-mode watchdog; reply delays use the event loop's time.
        by_address = {0: pumps} if isinstance(pumps, SimulatedPump) else dict(pumps)
        if isinstance(faults, Faults):
            faults = {address: faults for address in by_address}
        super().__init__(Ne1000Line(by_address, faults=faults, clock=clock), name=name)

    def faults(self, address: int = 0) -> Faults:
        """The live fault settings of the pump at ``address`` (mutate to inject)."""
        return self.line.pumps[address].faults
