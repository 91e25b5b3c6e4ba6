"""The driver contract: what the poller calls, and the one door every command goes through.

A driver supplies two methods, :meth:`PumpDriver.identify` and :meth:`PumpDriver.poll`
(Home Assistant's one-method coordinator idea). Every byte a driver sends to a pump passes
:meth:`PumpDriver._send`, which refuses anything outside the class's read-only
``ALLOWED_COMMANDS`` (design §2 invariant 1); subclasses implement only the encoder behind
it. There is deliberately no public method that starts, stops or programs a pump.

Drivers that own their link's reply stream (Alaris, NE-1000) build on :class:`StreamDriver`:
one request/reply exchange at a time, and after a timeout or a bad frame the line is drained
until quiet and everything still arriving is counted and logged, so a late reply is never
taken for the answer to the next question (style: "never silently clear a buffer"). That
"dirty line" state, the decoder and any late reply belong to the *link*, not to one driver:
on a multidrop line pump B's late reply may arrive while pump A is asking, and it is handed
to B (the driver whose address it names), never taken as A's answer or A's alarm. So a
driver is built on a :class:`~drivers.line.Line` (the link plus that shared state), made once
per opened link by whoever owns the link -- the poller -- and given to every driver on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar

from drivers.errors import ForbiddenCommand, FrameError, ReplyTimeout
from drivers.framing_common import StreamDecoder
from drivers.line import Line
from drivers.model import Alarm, PumpIdentity, PumpSnapshot
from drivers.transport.link import Link, write_bounded

FrameT = TypeVar("FrameT")
_QUIET_S = 0.05  # line quiet time that ends a drain
NOISE_SUMMARY_S = 60.0  # a noisy line: one WARNING summary per this many seconds
_MAX_DRAIN_READS = 64


class PumpDriver(ABC):
    """Read-only client for one pump on one link.

    ``line`` is the :class:`~drivers.line.Line` shared with the other pumps on the wire; a
    bare :class:`~drivers.transport.link.Link` gets a line of its own (one pump, one wire).
    """

    protocol: ClassVar[str]
    ALLOWED_COMMANDS: ClassVar[frozenset[str]]

    def __init__(
        self,
        line: Line | Link,
        *,
        pump_id: str,
        address: int | None = None,
        request_timeout_s: float = 1.0,
    ) -> None:
        if request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be > 0, got {request_timeout_s}")
        self.line = line if isinstance(line, Line) else Line(line)
        self.link: Link = self.line.link
        self.pump_id = pump_id
        self.address = address
        self.request_timeout_s = request_timeout_s

    @property
    def _exchange_lock(self) -> asyncio.Lock:
        return self.line.lock

    @property
    def unreported_alarms(self) -> tuple[Alarm, ...]:
        """Alarms the pump reported (and so acknowledged) that no snapshot has carried yet.

        The poller hands these to the next driver for the same pump when this one is
        discarded (link lost, poller restarted), so they are not lost with it (§0 rule 4).
        """
        return ()

    def adopt_alarms(self, alarms: tuple[Alarm, ...]) -> tuple[Alarm, ...]:
        """Take over a previous driver's :attr:`unreported_alarms` for the next snapshot.

        Returns the alarms this driver cannot carry (all of them by default, for drivers that
        never hold any), so the caller can report them instead of dropping them silently.
        """
        return tuple(alarms)

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
        """The single choke point: refuse anything off the allowlist, then write.

        The write is bounded by the request timeout: a stalled adapter or flow control must
        cost this link a reconnect (:class:`LinkError`), not hang the poller.
        """
        if command not in self.ALLOWED_COMMANDS:
            raise ForbiddenCommand(self.protocol, command)
        await write_bounded(self.link, self._encode_request(command), self.request_timeout_s)


@dataclass(eq=False)
class StreamState:
    """What every :class:`StreamDriver` on one :class:`~drivers.line.Line` shares: the byte
    stream's decoder and state.

    The first driver's decoder serves the whole line (one protocol per wire), so a frame
    half-read by a driver that timed out is completed, not taken for noise, by the next.
    """

    decoder: StreamDecoder
    dirty: bool = False
    leftover: list = field(default_factory=list)  # arrived after a reply; reported by _drain
    drivers: weakref.WeakValueDictionary[int, StreamDriver] = field(default_factory=weakref.WeakValueDictionary)


class StreamDriver(PumpDriver, Generic[FrameT]):
    """A driver reading replies from its own decoder: exchange, skip noise, drain late replies.

    A subclass passes its protocol's decoder, names the decoder's noise type (``NOISE``) and
    its logger (``_log``), and says what a discarded late reply means
    (:meth:`_discard_late_reply`). If its replies name the command they answer, it can
    recognise replies to another command (:meth:`_mismatch`).
    """

    NOISE: ClassVar[type[FrameError]]
    """The decoder's "bytes outside a frame" error: skipped and counted, never raised."""
    _log: ClassVar[logging.Logger]

    def __init__(
        self,
        line: Line | Link,
        *,
        pump_id: str,
        address: int | None = None,
        request_timeout_s: float = 1.0,
        decoder: StreamDecoder[FrameT],
    ) -> None:
        super().__init__(line, pump_id=pump_id, address=address, request_timeout_s=request_timeout_s)
        stream = self.line.shared(StreamState, lambda: StreamState(decoder))
        self._stream = stream
        if address is not None:
            stream.drivers[address] = self  # late replies naming this address come here
        self.dropped_bytes = 0
        """Bytes skipped as noise, aborted frames or late replies on this link (counted, logged)."""
        self._noise_first = 0.0  # monotonic start of the current noisy spell (0: quiet)
        self._noise_last = 0.0
        self._noise_unreported = (0, 0)  # (runs, bytes) logged at DEBUG since the last WARNING

    async def _exchange_frame(self, command: str) -> FrameT:
        """Send ``command`` and return its reply frame, one exchange at a time per link.

        A line left dirty (timeout, bad frame, cancellation) is drained first. If only replies
        to other commands arrive before the timeout, the last of them is raised: it says more
        than a bare :class:`ReplyTimeout`.
        """
        stream = self._stream
        async with self._exchange_lock:
            if stream.dirty or stream.leftover or stream.decoder.pending:
                await self._drain()
            await self._send(command)
            mismatches: list[FrameError] = []
            try:
                async with asyncio.timeout(self.request_timeout_s):
                    return await self._next_frame(command, mismatches)
            except TimeoutError:
                stream.dirty = True
                if mismatches:
                    raise mismatches[-1].located(pump_id=self.pump_id, link=self.link.name) from None
                raise ReplyTimeout(self.pump_id, self.link.name, command, self.request_timeout_s) from None
            except BaseException:
                stream.dirty = True  # bad frame, link loss or cancellation: resync before next use
                raise

    def _mismatch(self, frame: FrameT, command: str) -> FrameError | None:
        """The error if ``frame`` answers another command than ``command`` (a late reply),
        or comes from another address than this driver's (a multidrop neighbour's late reply).

        By default every frame is taken as the reply: only protocols that echo the command
        or the address can tell.
        """
        return None

    def _reply_address(self, frame: FrameT) -> int | None:
        """The multidrop address a reply names, or None if it names none (point to point)."""
        return None

    @abstractmethod
    def _discard_late_reply(self, frame: FrameT) -> None:
        """Count and log a whole reply that arrived too late to be anyone's answer."""

    def _route_late_reply(self, frame: FrameT) -> None:
        """Hand a late reply to the driver on this link whose address it names.

        A reply naming no known driver stays with this one, whose :meth:`_discard_late_reply`
        must then refuse to take anything in it as its own.
        """
        address = self._reply_address(frame)
        owner = self if address is None else self._stream.drivers.get(address, self)
        owner._discard_late_reply(frame)

    async def _next_frame(self, command: str, mismatches: list[FrameError]) -> FrameT:
        """The reply to ``command``. Noise and replies to other commands before it are counted,
        logged and skipped (the latter also collected in ``mismatches``); a bad frame raises."""
        while True:
            items = self._stream.decoder.feed(await self.link.read())
            for index, item in enumerate(items):
                if isinstance(item, self.NOISE):
                    self._count_dropped(item, "before the reply")
                    continue
                if not isinstance(item, FrameError):
                    mismatch = self._mismatch(item, command)
                    if mismatch is not None:
                        mismatches.append(mismatch)
                        address = self._reply_address(item)
                        if address is not None and address != self.address:
                            self._route_late_reply(item)  # another pump's late reply: its owner's
                        else:
                            self._count_dropped(mismatch, "(a reply to another command)")
                        continue
                self._stream.leftover.extend(items[index + 1 :])
                if isinstance(item, FrameError):
                    raise item.located(pump_id=self.pump_id, link=self.link.name)
                return item

    def _count_dropped(self, error: FrameError, where: str) -> None:
        """Count every skipped run; log the first of a noisy spell at WARNING, the rest at
        DEBUG with a WARNING summary every NOISE_SUMMARY_S while it lasts (a noisy line
        otherwise floods the journal with one line per poll)."""
        size = len(error.data)
        self.dropped_bytes += size
        now = time.monotonic()
        if not self._noise_first or now - self._noise_last > NOISE_SUMMARY_S:
            self._noise_first, self._noise_unreported = now, (0, 0)
            self._log.warning(
                "pump %s on %s: skipped %d byte(s) %s: %s at stream offset %d (repeats are summarised every %g s)",
                self.pump_id,
                self.link.name,
                size,
                where,
                error.reason,
                error.offset,
                NOISE_SUMMARY_S,
            )
        else:
            runs, total = self._noise_unreported
            self._noise_unreported = (runs + 1, total + size)
            self._log.debug(
                "pump %s on %s: skipped %d byte(s) %s: %s at stream offset %d",
                self.pump_id,
                self.link.name,
                size,
                where,
                error.reason,
                error.offset,
            )
            if now - self._noise_first >= NOISE_SUMMARY_S:
                self._log.warning(
                    "pump %s on %s: still skipping noise: %d more run(s), %d byte(s) in the last %.0f s "
                    "(%d byte(s) skipped on this link in all)",
                    self.pump_id,
                    self.link.name,
                    runs + 1,
                    total + size,
                    now - self._noise_first,
                    self.dropped_bytes,
                )
                self._noise_first, self._noise_unreported = now, (0, 0)
        self._noise_last = now

    async def _drain(self) -> None:
        """Wait for a quiet line; report (never silently drop) what was still arriving."""
        stream = self._stream
        items, stream.leftover = stream.leftover, []
        for _ in range(_MAX_DRAIN_READS):
            try:
                async with asyncio.timeout(_QUIET_S):
                    data = await self.link.read()
            except TimeoutError:
                break
            items.extend(stream.decoder.feed(data))
        items.extend(stream.decoder.flush())
        for item in items:
            if isinstance(item, FrameError):
                self._count_dropped(item, "while resynchronising")
            else:
                self._route_late_reply(item)
        stream.dirty = False
