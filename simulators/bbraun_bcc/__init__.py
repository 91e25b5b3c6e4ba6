"""B. Braun SpaceCom BCC-style rack simulator over TCP (reference §6)."""

from simulators.bbraun_bcc.rack import BccRack, RackSlot
from simulators.bbraun_bcc.server import BccRackServer

__all__ = ["BccRack", "BccRackServer", "RackSlot"]
