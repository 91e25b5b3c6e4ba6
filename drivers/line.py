"""One wire and what every driver on it shares: the exchange lock and protocol state.

Several drivers may talk over one link (NE-1000 pumps on a multidrop RS-232 line, every slot
of a SpaceCom rack on one TCP connection). One request at a time per wire (style.md,
zigpy-znp), and the protocol's per-wire state -- a half-read frame, a "dirty" line to drain,
a rack's bed ID and latest image -- belongs to the wire, not to one driver. The owner of the
link (the poller, a test, a tool) makes one :class:`Line` per opened link and hands it to
every driver on it; when the link is closed the line goes with it. There is no registry of
lines: the object is the state, passed where it is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar, cast

from drivers.transport.link import Link

T = TypeVar("T")


class Line:
    """One opened link and the state every driver on it shares."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.lock = asyncio.Lock()
        """Held for one request/reply exchange: the wire carries one question at a time."""
        self._shared: dict[type, object] = {}

    @property
    def name(self) -> str:
        return self.link.name

    def shared(self, kind: type[T], make: Callable[[], T]) -> T:
        """This line's one ``kind`` object (a decoder's state, a rack session), made by
        ``make`` for the first driver that asks; later drivers on the line get the same one."""
        state = self._shared.get(kind)
        if state is None:
            state = self._shared[kind] = make()
        return cast(T, state)

    def __repr__(self) -> str:
        return f"Line({self.link.name!r})"
