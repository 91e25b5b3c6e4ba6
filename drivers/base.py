"""The driver contract: what the poller calls, and the one door every command goes through.

A driver supplies two methods, :meth:`PumpDriver.identify` and :meth:`PumpDriver.poll`
(Home Assistant's one-method coordinator idea). Every byte a driver sends to a pump passes
:meth:`PumpDriver._send`, which refuses anything outside the class's read-only
``ALLOWED_COMMANDS`` (design §2 invariant 1); subclasses implement only the encoder behind
it. There is deliberately no public method that starts, stops or programs a pump.
"""

from __future__ import annotations

import asyncio
import weakref
from abc import ABC, abstractmethod
from typing import ClassVar

from drivers.errors import ForbiddenCommand
from drivers.model import PumpIdentity, PumpSnapshot
from drivers.transport.link import Link

# One request at a time per *link*: several drivers may share a multidrop line (NE-1000
# addresses 0-99), so the lock belongs to the link, not to the driver.
_LINK_LOCKS: weakref.WeakKeyDictionary[Link, asyncio.Lock] = weakref.WeakKeyDictionary()


def link_lock(link: Link) -> asyncio.Lock:
    """The lock that serialises request/reply exchanges on ``link``."""
    lock = _LINK_LOCKS.get(link)
    if lock is None:
        lock = _LINK_LOCKS[link] = asyncio.Lock()
    return lock


class PumpDriver(ABC):
    """Read-only client for one pump on one link."""

    protocol: ClassVar[str]
    ALLOWED_COMMANDS: ClassVar[frozenset[str]]

    def __init__(
        self,
        link: Link,
        *,
        pump_id: str,
        address: int | None = None,
        request_timeout_s: float = 1.0,
    ) -> None:
        if request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be > 0, got {request_timeout_s}")
        self.link = link
        self.pump_id = pump_id
        self.address = address
        self.request_timeout_s = request_timeout_s

    @property
    def _exchange_lock(self) -> asyncio.Lock:
        return link_lock(self.link)

    @abstractmethod
    async def identify(self) -> PumpIdentity:
        """Ask the pump who it is (manufacturer, model, serial, firmware)."""

    @abstractmethod
    async def poll(self) -> PumpSnapshot:
        """One complete read of the pump's state, normalized."""

    @abstractmethod
    def _encode_request(self, command: str) -> bytes:
        """The wire bytes for one allow-listed command (addressing and framing)."""

    async def _send(self, command: str) -> None:
        """The single choke point: refuse anything off the allowlist, then write."""
        if command not in self.ALLOWED_COMMANDS:
            raise ForbiddenCommand(self.protocol, command)
        await self.link.write(self._encode_request(command))
