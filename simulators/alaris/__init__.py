"""Alaris-style pump side (reference §3): a pure front-end, served on a pty by PtyServer."""

from simulators.alaris.frontend import AlarisLine

__all__ = ["AlarisLine"]
