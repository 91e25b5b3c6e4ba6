"""One BCC session per rack connection, shared by every slot's driver (reference §6.4).

How a real client drives a rack (§6.4, [D3]): connect, ``ADMIN:ALIVE`` once (bed ID ``1``),
take the bed ID of the ``GNACK`` answer, then poll ``MEM:GET`` -- one request returning every
pump of the rack, possibly over several frames (ETB ... ETX, [D7]). So pumpgw does the same:
the :class:`RackSession` of a link issues **one** ``MEM:GET`` per poll cycle and hands the
resulting :class:`RackImage` to every slot's driver. A driver reuses an image that is newer
than the last one it consumed and at most ``SHARED_IMAGE_MAX_AGE_S`` old, otherwise it
refreshes it -- so N slots polled together cost one request, and one slot polled alone still
gets fresh data every time. Requests go through the line's lock (one at a time per wire) and
keep the pumps' 500 ms gap between the end of one result and the next request ([D1]). The
session lives on the :class:`~drivers.line.Line` its drivers share, and dies with it.

Every frame parsed successfully is acknowledged with a bare ACK (§6.3); a bad frame is
dropped without ACK or NAK (as the open client does) and reported. Silence stays per pump:
a slot missing from an image raises for that slot's driver only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from drivers.bbraun_bcc import codec
from drivers.bbraun_bcc.framing import ACK, DroppedBytes, Frame, FrameDecoder, LinkControl, encode_frame
from drivers.errors import ForbiddenCommand, FrameError, ReplyTimeout
from drivers.line import Line
from drivers.transport.link import Link, write_bounded

log = logging.getLogger("pumpgw.drivers.bbraun_bcc")

# §6.5, the read-only requests this client sends, plus the link-level ACK byte (§6.3).
# MEM:GETSLOT is read-only too but unused: one MEM:GET serves every slot.
LINK_ACK = "ACK"
ALLOWED_REQUESTS = frozenset({codec.ALIVE, codec.VERSION, codec.GET, LINK_ACK})
INITIAL_BED_ID = "1"  # §6.4
SHARED_IMAGE_MAX_AGE_S = 2.0
MIN_REQUEST_GAP_S = 0.5  # §6.4: 500 ms between the end of a result and the next request
_QUIET_S = 0.05


@dataclass
class RackImage:
    """What one ``MEM:GET`` returned, by slot."""

    generation: int
    taken_at: float
    slots: dict[tuple[int, int], list[codec.Record]] = field(default_factory=dict)
    gnerr: dict[tuple[int, int], str] = field(default_factory=dict)
    rack: list[codec.Record] = field(default_factory=list)
    errors: list[FrameError] = field(default_factory=list)
    complete: bool = False


def encode_request(bed_id: str, command: str, *, stuffing: bool = False) -> bytes:
    if command == LINK_ACK:
        return bytes([ACK])
    return encode_frame(bed_id, command.encode("ascii"), stuffing=stuffing)


class RackSession:
    """The shared per-link state: bed ID, rack version, the latest rack image."""

    def __init__(self, line: Line, *, stuffing: bool = False, min_gap_s: float | None = None) -> None:
        self.line = line
        self.link: Link = line.link
        self.link_name = line.link.name
        self.stuffing = stuffing
        self.min_gap_s = MIN_REQUEST_GAP_S if min_gap_s is None else min_gap_s
        self.bed_id: str | None = None
        self.version: str | None = None
        self.image: RackImage | None = None
        self._decoder = FrameDecoder(stuffing=stuffing)
        self._generation = 0
        self._last_end = float("-inf")
        self._dirty = False
        self.requests = 0
        self.dropped_bytes = 0

    async def rack_image(self, *, pump_id: str, consumed: int, timeout_s: float) -> RackImage:
        if self._fresh(consumed):
            assert self.image is not None
            return self.image
        async with self.line.lock:
            if not self._fresh(consumed):  # another slot may have refreshed it meanwhile
                await self._ensure_alive(pump_id, timeout_s)
                self.image = await self._mem_get(timeout_s)
        assert self.image is not None
        return self.image

    async def rack_version(self, *, pump_id: str, timeout_s: float) -> str:
        async with self.line.lock:
            await self._ensure_alive(pump_id, timeout_s)
            if self.version is None:
                frame = await self._request(codec.VERSION, pump_id, timeout_s)
                records = self._records(frame, pump_id)
                self.version = records[0].parameter if records else "unknown"
        return self.version

    def _fresh(self, consumed: int) -> bool:
        image = self.image
        return (
            image is not None
            and image.generation > consumed
            and time.monotonic() - image.taken_at <= SHARED_IMAGE_MAX_AGE_S
        )

    async def _send(self, command: str, timeout_s: float) -> None:
        """The session's choke point: the same read-only allowlist as the driver's; a write
        that stalls past ``timeout_s`` is a :class:`~drivers.errors.LinkError`."""
        if command not in ALLOWED_REQUESTS:
            raise ForbiddenCommand("bbraun-bcc", command)
        wire = encode_request(self.bed_id or INITIAL_BED_ID, command, stuffing=self.stuffing)
        await write_bounded(self.link, wire, timeout_s)

    async def _ensure_alive(self, pump_id: str, timeout_s: float) -> None:
        if self.bed_id is not None:
            return
        frame = await self._request(codec.ALIVE, pump_id, timeout_s)
        records = self._records(frame, pump_id)
        if not any(r.parameter == "GNACK" for r in records):
            raise FrameError(
                "ADMIN:ALIVE answer has no GNACK record",
                offset=frame.offset,
                data=frame.data,
                pump_id=pump_id,
                link=self.link.name,
            )
        self.bed_id = frame.bed_id  # §6.4: later requests use the rack's bed ID

    def _records(self, frame: Frame, pump_id: str) -> list[codec.Record]:
        try:
            return codec.parse_records(frame.data)
        except FrameError as exc:
            raise exc.located(pump_id=pump_id, link=self.link.name) from None

    async def _before_request(self) -> None:
        if self._dirty or self._decoder.pending:
            await self._drain()
        wait = self._last_end + self.min_gap_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.requests += 1

    async def _request(self, command: str, pump_id: str, timeout_s: float) -> Frame:
        """A single-frame exchange (ALIVE, VERSION)."""
        await self._before_request()
        await self._send(command, timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    for item in self._decoder.feed(await self.link.read()):
                        if isinstance(item, Frame):
                            await self._send(LINK_ACK, timeout_s)
                            return item
                        self._note(item)
        except TimeoutError:
            self._dirty = True
            raise ReplyTimeout(pump_id, self.link.name, command, timeout_s) from None
        except BaseException:
            self._dirty = True
            raise
        finally:
            self._last_end = time.monotonic()

    async def _mem_get(self, timeout_s: float) -> RackImage:
        await self._before_request()
        self._generation += 1
        image = RackImage(self._generation, time.monotonic())
        await self._send(codec.GET, timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                while not image.complete:
                    for item in self._decoder.feed(await self.link.read()):
                        if isinstance(item, Frame) and not image.complete:
                            await self._take(item, image, timeout_s)
                        elif isinstance(item, Frame):
                            self._note(DroppedBytes("frame after the final one", offset=item.offset, data=item.data))
                        elif isinstance(item, FrameError) and not isinstance(item, DroppedBytes):
                            self._note(item)
                            image.errors.append(item.located(pump_id="(rack)", link=self.link.name))
                        else:
                            self._note(item)
        except TimeoutError:
            self._dirty = True  # the rest may still arrive: drain before the next request
        except BaseException:
            self._dirty = True
            raise
        finally:
            self._last_end = time.monotonic()
        image.taken_at = time.monotonic()
        return image

    async def _take(self, frame: Frame, image: RackImage, timeout_s: float) -> None:
        try:
            records = codec.parse_records(frame.data)
        except FrameError as exc:
            self._note(exc)
            image.errors.append(exc.located(pump_id="(rack)", link=self.link.name))
            return
        await self._send(LINK_ACK, timeout_s)
        for record in records:
            if record.position == (0, 0):
                image.rack.append(record)
            elif record.parameter == "GNERR":
                image.gnerr[record.position] = record.value or ""
            else:
                image.slots.setdefault(record.position, []).append(record)
        image.complete = frame.final

    def _note(self, item: FrameError | LinkControl) -> None:
        if isinstance(item, LinkControl):
            return  # the rack's own ACK/NAK of our requests: nothing to do (§6.3)
        self.dropped_bytes += len(item.data)
        log.warning(
            "rack on %s: dropped %d byte(s): %s at stream offset %d",
            self.link.name,
            len(item.data),
            item.reason,
            item.offset,
        )

    async def _drain(self) -> None:
        for _ in range(64):
            try:
                async with asyncio.timeout(_QUIET_S):
                    data = await self.link.read()
            except TimeoutError:
                break
            for item in self._decoder.feed(data):
                if isinstance(item, Frame):
                    item = DroppedBytes(
                        "late frame discarded while resynchronising", offset=item.offset, data=item.data
                    )
                self._note(item)
        for item in self._decoder.flush():
            self._note(item)
        self._dirty = False


def rack_session(line: Line) -> RackSession:
    """The one session of ``line`` (created on first use, gone with the line)."""
    return line.shared(RackSession, lambda: RackSession(line))
