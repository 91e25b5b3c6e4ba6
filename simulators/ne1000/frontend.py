"""The NE-1000 pump side as pure logic: requests in, reply bytes out (reference §2).

It speaks with the driver's own framing and codec (``drivers.ne1000``) so the two cannot
drift, and nesp-lib checks both independently. One :class:`Ne1000Line` is one RS-232 line
with pumps at addresses 0-99 (§2.2); a command for an absent address gets no answer, as
on a real multidrop line.

Behaviour transcribed from §2.6, §2.7, §2.9 and §2.12:

* power-up: each pump holds an unacknowledged ``pump_reset`` alarm, so its first reply is
  ``A?R``; any valid command is answered with the oldest unacknowledged alarm instead of
  being executed, and that reply acknowledges it;
* ``SAF<n>``: n > 0 enables safe mode with an n-second watchdog armed by the next valid
  packet; on expiry the pump raises ``A?T`` and stops. The reply to ``SAF0`` is basic, to
  ``SAF<n>`` already safe. In safe mode the pump sends an alarm packet on its own (auto
  alarm), which does not acknowledge it;
* a bad CRC gets ``?COM``; an unknown command ``?``; a set command while not applicable
  ``?NA``; a value out of range ``?OOR``;
* ``STP`` pauses a running program and stops a paused one; ``VOL 0`` means no volume
  limit (the pump runs until stopped) -- an assumption, the reference does not say.

Model alarms an NE-1000 cannot express (air in line, door, battery) are not reported;
``occlusion`` is reported as a motor stall, which is what a syringe pump sees.

What each command does is :mod:`simulators.ne1000.commands`; this module is the line: packets
in, the alarm handshake, the safe-mode watchdog, replies out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from drivers.errors import FrameError
from drivers.ne1000 import codec
from drivers.ne1000.framing import ChecksumError, Request, RequestDecoder, encode_basic_reply, encode_safe
from simulators.faults import Faults, Outgoing, faulty_reply
from simulators.line import DecodingLine
from simulators.ne1000.commands import Ne1000Commands, Ne1000PumpState, Refuse
from simulators.pump_model import DeliveryState, SimulatedPump

NE_ALARM_CODES: dict[str, str] = {
    "pump_reset": "R",
    "motor_stalled": "S",
    "occlusion": "S",
    "comm_timeout": "T",
    "program_error": "E",
    "phase_out_of_range": "O",
}
_COMMAND = re.compile(r"(\d{0,2})(\*?[A-Z]{3}|)(.*)", re.DOTALL)  # mnemonics are 3 letters


class Ne1000Line(DecodingLine[Request], Ne1000Commands):
    """Every pump on one RS-232 line, answering the host's byte stream."""

    def __init__(
        self,
        pumps: dict[int, SimulatedPump],
        *,
        faults: dict[int, Faults] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for address in pumps:
            if not 0 <= address <= 99:
                raise ValueError(f"NE-1000 addresses are 0-99, got {address}")
        super().__init__(RequestDecoder())
        self._clock = clock
        self.pumps: dict[int, Ne1000PumpState] = {
            address: Ne1000PumpState(pump, faults=(faults or {}).get(address, Faults()))
            for address, pump in pumps.items()
        }
        for state in self.pumps.values():
            state.pump.set_alarm("pump_reset")  # §2.12: A?R at power-up

    # -- bytes in (an incomplete packet is discarded after 0.5 s, §2.2: timed by the server) --

    def _bad_frame(self, error: FrameError) -> list[Outgoing]:
        """A bad CRC gets ``?COM`` (§2.12); any other bad frame no answer."""
        if isinstance(error, ChecksumError):
            return self._checksum_failed(error)
        return []

    def _checksum_failed(self, error: ChecksumError) -> list[Outgoing]:
        # The address is inside the damaged data; answer ?COM if it names a pump (§2.12).
        match = re.match(rb"\d{1,2}", error.data[2:])
        state = self.pumps.get(int(match[0]) if match else 0)
        if state is None:
            return []
        address = int(match[0]) if match else 0
        return self._reply(state, codec.Reply(address, self._status(state), error="COM"), safe=state.safe_timeout_s > 0)

    def _request(self, request: Request) -> list[Outgoing]:
        match = _COMMAND.fullmatch(request.text)
        assert match is not None  # the pattern matches any string
        address = int(match[1]) if match[1] else 0
        state = self.pumps.get(address)
        if state is None:
            return []
        if state.safe_timeout_s > 0 and not request.safe:
            # A basic-mode packet is not a valid packet in safe mode.
            return self._reply(state, codec.Reply(address, self._status(state), error="COM"), safe=True)
        if state.safe_timeout_s > 0:
            state.watchdog_armed_at = self._clock()
        pending = self._unacknowledged(state)
        if pending is not None:
            kind, code = pending
            state.pump.acknowledge_alarm(kind)
            state.auto_alarmed.discard(kind)
            return self._reply(state, codec.Reply(address, "A", alarm=code), safe=state.safe_timeout_s > 0)
        try:
            data = self._execute(state, match[2], match[3])
        except Refuse as refusal:
            reply = codec.Reply(address, self._status(state), error=refusal.code)
        else:
            reply = codec.Reply(address, self._status(state), data=data)
        return self._reply(state, reply, safe=state.safe_timeout_s > 0)

    # -- time ----------------------------------------------------------------------------

    def tick(self) -> list[Outgoing]:
        """Safe-mode watchdog expiry and auto-alarm packets (§2.5, §2.6)."""
        now = self._clock()
        out: list[Outgoing] = []
        for address, state in self.pumps.items():
            if state.safe_timeout_s <= 0:
                continue
            armed = state.watchdog_armed_at
            if armed is not None and now - armed > state.safe_timeout_s:
                state.watchdog_armed_at = None  # re-armed by the next valid packet
                state.pump.set_alarm("comm_timeout")
            pending = self._unacknowledged(state)
            if pending is not None and pending[0] not in state.auto_alarmed:
                state.auto_alarmed.add(pending[0])  # sent once; does not acknowledge (§2.5)
                out.extend(self._reply(state, codec.Reply(address, "A", alarm=pending[1]), safe=True))
        return out

    # -- alarm handshake and status ------------------------------------------------------

    @staticmethod
    def _unacknowledged(state: Ne1000PumpState) -> tuple[str, str] | None:
        for alarm in state.pump.alarms:
            if not alarm.acknowledged and alarm.kind in NE_ALARM_CODES:
                return alarm.kind, NE_ALARM_CODES[alarm.kind]
        return None

    @staticmethod
    def _status(state: Ne1000PumpState) -> str:
        pump_state = state.pump.state
        if pump_state in (DeliveryState.INFUSING, DeliveryState.KVO):
            return "W" if state.pump.withdrawing else "I"
        return "P" if pump_state is DeliveryState.PAUSED else "S"

    # -- bytes out -------------------------------------------------------------------------

    @staticmethod
    def _reply(state: Ne1000PumpState, reply: codec.Reply, *, safe: bool) -> list[Outgoing]:
        text = codec.format_reply(reply)
        if safe:
            return faulty_reply(state.faults, encode_safe(text.encode("ascii")), _corrupt_safe)
        return faulty_reply(state.faults, encode_basic_reply(text), _corrupt_basic)


def _corrupt_safe(wire: bytes) -> bytes:
    damaged = bytearray(wire)
    damaged[-2] ^= 0x01  # CRC low byte
    return bytes(damaged)


def _corrupt_basic(wire: bytes) -> bytes:
    damaged = bytearray(wire)
    damaged[2] = 0xFF  # a data byte no basic reply may contain
    return bytes(damaged)
