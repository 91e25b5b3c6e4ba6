"""Fault injection for the NE-1000 simulator: the shared per-pump :class:`Faults`."""

from simulators.faults import Faults

__all__ = ["Faults"]
