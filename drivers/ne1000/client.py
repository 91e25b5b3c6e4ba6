"""The NE-1000 read-only driver: basic-mode queries over one link (reference §2).

Choices, with the spec section that forces them:

* Only the §2.8 queries, always without parameters -- the same mnemonic with parameters is a
  set command (§0 rule 2). The address is prefixed by the encoder, never by a caller.
* Never ``SAF`` (§2.6): a non-zero value arms a watchdog that stops the infusion when the
  gateway goes quiet. A pump that answers in safe-mode framing is reported
  (:class:`SafeModeActive`) and not polled on, because our valid packets would arm it.
* An alarm reply (``A?x``) acknowledges the alarm at the pump (§0 rule 4, §2.7), so the
  driver logs it at WARNING at once, keeps it until a snapshot carrying it is returned, and
  re-sends the same query to get the data it asked for.
* Latched alarms. Because reading acknowledges, the pump reports each alarm exactly once; the
  next reply without it says nothing about the condition. Every NE-1000 alarm is therefore
  ``latched``: the event layer keeps it active until the pump's state shows it resolved,
  which for this protocol means the pump reports infusing again (status ``I`` or ``X``;
  ``W`` withdrawing maps to an unknown delivery state and keeps the alarm). A stalled motor, a safe-mode time-out, a program
  error or a power reset leaves the pump stopped until someone restarts it, so "running
  again" is the first observable sign that the condition was dealt with.
* Status mapping (§2.7): ``I`` infusing; ``X`` purging -> infusing (fluid leaves the syringe at
  maximum rate: reporting delivery is the safe reading); ``W`` withdrawing -> unknown (the
  normalized model has no "withdrawing", and calling it delivery would be false); ``S``
  stopped; ``P``/``T``/``U`` paused. A program-stopping alarm (``S``, ``T``, ``E``, ``O``)
  makes the channel ``alarm`` unless the pump already reports it running again; ``A?R``
  (power-up) leaves the status as reported.
* Identity (``VER``) is read once and again after every ``A?R`` (power-up): a pump swapped
  on the same port shows up as a changed identity in the next snapshot.
* After a timeout or a bad frame, a late reply may still be on its way; before the next
  request the driver waits for the line to go quiet and reports what it drained, so a late
  reply is never taken for the answer to the next question.
* Several pumps may share one line (addresses 0-99): a late reply names its address, so it
  goes to that pump's driver (an alarm in it is that pump's, already acknowledged); an alarm
  from an address no driver on the line has is logged at ERROR, never noted on another pump.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from drivers.base import StreamDriver
from drivers.errors import FrameError, PumpRefused, SafeModeActive, byte_shape
from drivers.line import Line
from drivers.model import (
    Alarm,
    AlarmPriority,
    ChannelSnapshot,
    ChannelState,
    PumpIdentity,
    PumpSnapshot,
    Quantity,
)
from drivers.ne1000 import codec
from drivers.ne1000.framing import DroppedBytes, Frame, ReplyDecoder, encode_basic
from drivers.transport.link import Link

log = logging.getLogger("pumpgw.drivers.ne1000")
T = TypeVar("T")

# §2.8, transcribed: the read-only command table. Values are the exact mnemonics sent.
QUERIES: dict[str, str] = {
    "status": "",
    "version": "VER",
    "rate": "RAT",
    "volume": "VOL",
    "dispensed": "DIS",
    "direction": "DIR",
    "diameter": "DIA",
}

_STATE: dict[str, ChannelState] = {
    "I": ChannelState.INFUSING,
    "X": ChannelState.INFUSING,
    "W": ChannelState.UNKNOWN,
    "S": ChannelState.STOPPED,
    "P": ChannelState.PAUSED,
    "T": ChannelState.PAUSED,
    "U": ChannelState.PAUSED,
}
_RUNNING = frozenset("IXW")
_STOPPING_ALARMS = frozenset("STEO")
_ALARM_PRIORITY = {"R": AlarmPriority.MEDIUM}
_MAX_ALARM_REPLIES = 3  # one query answered by successive new alarms; then give up


def alarm_from_code(code: str) -> Alarm:
    kind, text = codec.ALARM_TYPES[code]
    return Alarm(
        code=f"A?{code}", kind=kind, text=text, priority=_ALARM_PRIORITY.get(code, AlarmPriority.HIGH), latched=True
    )


class Ne1000Driver(StreamDriver[Frame]):
    """One NE-1000-family pump at ``address`` (default 0) on a basic-mode link."""

    protocol = "ne1000"
    ALLOWED_COMMANDS = frozenset(QUERIES.values())
    NOISE = DroppedBytes
    _log = log

    def __init__(
        self,
        line: Line | Link,
        *,
        pump_id: str,
        address: int | None = None,
        request_timeout_s: float = 1.0,
    ) -> None:
        self._address = 0 if address is None else address
        if not 0 <= self._address <= 99:
            raise ValueError(f"NE-1000 address must be 0-99, got {address}")
        super().__init__(
            line, pump_id=pump_id, address=self._address, request_timeout_s=request_timeout_s, decoder=ReplyDecoder()
        )
        self._poll_lock = asyncio.Lock()  # one poll at a time: alarms are handed over exactly once
        self._identity: PumpIdentity | None = None
        self._unreported_alarms: list[Alarm] = []

    # -- public, read-only -------------------------------------------------------------

    async def identify(self) -> PumpIdentity:
        version = self._value(codec.parse_version, await self._query(QUERIES["version"]))
        # No serial-number command exists for this family (§2.8, §2.11).
        self._identity = PumpIdentity(
            manufacturer=codec.MANUFACTURER, model=version.model, serial_number=None, firmware=version.firmware
        )
        return self._identity

    async def poll(self) -> PumpSnapshot:
        async with self._poll_lock:
            return await self._poll()

    async def _poll(self) -> PumpSnapshot:
        identity = self._identity or await self.identify()
        status = await self._query(QUERIES["status"])
        rate = self._value(codec.parse_rate, await self._query(QUERIES["rate"]))
        vtbi = self._value(codec.parse_volume, await self._query(QUERIES["volume"]))
        last = await self._query(QUERIES["dispensed"])
        infused, _withdrawn = self._value(codec.parse_dispensed, last)
        if self._identity is None:  # power-cycled during this poll: maybe another pump now
            identity = await self.identify()
        alarms = tuple(self._unreported_alarms)
        codes = {alarm.code[-1] for alarm in alarms}
        state = _STATE[last.status]
        if codes & _STOPPING_ALARMS and last.status not in _RUNNING:
            state = ChannelState.ALARM
        channel = ChannelSnapshot(
            channel_id="1", state=state, rate=rate, vtbi=vtbi, volume_infused=infused, alarms=alarms
        )
        snapshot = PumpSnapshot(
            pump_id=self.pump_id,
            identity=identity,
            channels=(channel,),
            received_at=datetime.now(UTC),
            raw_status=" ".join([*(a.code for a in alarms), status.text, last.text]),
        )
        # Only now has a snapshot carrying the acknowledged alarms been produced (§0 rule 4).
        del self._unreported_alarms[: len(alarms)]
        return snapshot

    async def direction(self) -> str:
        """Pumping direction, ``INF`` or ``WDR``."""
        return self._value(codec.parse_direction, await self._query(QUERIES["direction"]))

    async def syringe_diameter(self) -> Quantity:
        return self._value(codec.parse_diameter, await self._query(QUERIES["diameter"]))

    @property
    def unreported_alarms(self) -> tuple[Alarm, ...]:
        """Alarms the pump reported (and so acknowledged) that no snapshot has carried yet."""
        return tuple(self._unreported_alarms)

    def adopt_alarms(self, alarms: tuple[Alarm, ...]) -> tuple[Alarm, ...]:
        """Carry a previous driver's unreported alarms in this driver's next snapshot."""
        self._unreported_alarms[:0] = alarms
        return ()

    # -- request/reply -----------------------------------------------------------------

    def _encode_request(self, command: str) -> bytes:
        return encode_basic(f"{self._address}{command}")

    async def _query(self, command: str) -> codec.Reply:
        """Ask; if the answer is an alarm (now acknowledged), keep it and ask again."""
        for _ in range(_MAX_ALARM_REPLIES):
            reply = await self._exchange(command)
            if reply.alarm is None:
                return reply
            self._note_alarm(reply, command)
        raise FrameError(
            f"pump kept answering {command!r} with alarms ({_MAX_ALARM_REPLIES} replies)",
            offset=0,
            pump_id=self.pump_id,
            link=self.link.name,
        )

    def _note_alarm(self, reply: codec.Reply, context: str) -> None:
        alarm = alarm_from_code(reply.alarm or "")
        self._unreported_alarms.append(alarm)
        if reply.alarm == "R":
            self._identity = None  # a power cycle can hide a swapped pump: read VER again
        log.warning(
            "pump %s on %s reported alarm %s (%s) in reply to %s; the reply acknowledged it",
            self.pump_id,
            self.link.name,
            alarm.code,
            alarm.kind,
            context,
        )

    async def _exchange(self, command: str) -> codec.Reply:
        frame = await self._exchange_frame(command)
        if frame.safe:
            raise SafeModeActive(self.pump_id, command)
        reply = self._parse(frame)
        if reply.error is not None:
            raise PumpRefused(self.pump_id, command, f"?{reply.error}", codec.COMMAND_ERRORS[reply.error])
        return reply

    def _value(self, parse: Callable[[str], T], reply: codec.Reply) -> T:
        """Parse reply data, naming this pump and port if it does not fit."""
        try:
            return parse(reply.data)
        except FrameError as exc:
            raise exc.located(pump_id=self.pump_id, link=self.link.name) from None

    def _parse(self, frame: Frame) -> codec.Reply:
        try:
            reply = codec.parse_reply(frame.data)
        except FrameError as exc:
            raise exc.located(pump_id=self.pump_id, link=self.link.name) from None
        if reply.address != self._address:
            raise FrameError(
                f"reply from address {reply.address}, expected {self._address}",
                offset=frame.offset,
                data=frame.data,
                pump_id=self.pump_id,
                link=self.link.name,
            )
        return reply

    def _mismatch(self, frame: Frame, command: str) -> FrameError | None:
        """A reply from another address is a neighbour's late reply, not our answer."""
        address = self._reply_address(frame)
        if address is None or address == self._address:
            return None
        return FrameError(
            f"reply from address {address}, expected {self._address}", offset=frame.offset, data=frame.data
        )

    def _reply_address(self, frame: Frame) -> int | None:
        try:
            return codec.parse_reply(frame.data).address
        except FrameError:
            return None  # unreadable: _parse reports it if it is taken as the reply

    def _discard_late_reply(self, frame: Frame) -> None:
        """Count and log it; an alarm in it was acknowledged by the pump, so keep that (§0 rule 4)."""
        self.dropped_bytes += len(frame.data)
        log.warning(
            "pump %s on %s: discarded a late reply (%s) while resynchronising",
            self.pump_id,
            self.link.name,
            byte_shape(frame.data),  # pump text stays out of the log
        )
        try:
            reply = codec.parse_reply(frame.data)
        except FrameError:
            return  # already reported above as a discarded late reply
        if reply.alarm is None:
            return
        if reply.address != self._address:
            # No driver on this line has that address: the alarm is someone's, not ours.
            log.error(
                "alarm A?%s from address %d on %s cannot be attributed: no pump with that address is "
                "polled on this line (it was acknowledged at the pump; reported here instead of lost)",
                reply.alarm,
                reply.address,
                self.link.name,
            )
            return
        self._note_alarm(reply, "an earlier request (late reply)")
