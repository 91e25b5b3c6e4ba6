"""NE-1000 pump side: the protocol front-end (pure) and its pseudo-terminal server."""

from simulators.ne1000.commands import Ne1000PumpState
from simulators.ne1000.faults import Faults
from simulators.ne1000.frontend import Ne1000Line
from simulators.ne1000.pty import Ne1000PtySimulator

__all__ = ["Faults", "Ne1000Line", "Ne1000PtySimulator", "Ne1000PumpState"]
