"""The Alaris-style pump side as pure logic: request bytes in, reply bytes out (reference §3).

It uses the driver's own framing and codec (``drivers.alaris``) so the two cannot drift.
Behaviour from §3.3, §3.4, §3.6-§3.8:

* one reply frame per request, field 0 echoing the command name; a frame whose CRC fails
  gets no reply; ESC discards a partial frame; unknown commands get no reply (the error
  reply format is unknown, §3.5);
* queries are answered **without** remote control by default. Whether a real pump does is
  not established (§3.4), so ``queries_need_remote=True`` models the other possibility (no
  reply until ``REMOTE_CTRL^ENABLED``) -- the driver then times out, visibly;
* the state-changing commands of §3.6 are accepted from test clients only after
  ``REMOTE_CTRL^ENABLED^<code>`` with code = CRC-16/CCITT-FALSE of the serial number (§3.4);
* an infusion started over the serial interface must hear a valid frame at least every
  15 s, else the pump raises ``comm_timeout`` and stops (§3.7, [C21]); tests can stop
  talking to inject a dropped keep-alive.

Codes the reference leaves unknown (mode, alarm texts) follow the conventions documented in
:mod:`drivers.alaris.codec`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from drivers.alaris import codec
from drivers.alaris.framing import Frame, FrameDecoder, crc_text, encode_frame
from drivers.model import Quantity
from simulators.faults import Faults, Outgoing, faulty_reply
from simulators.line import DecodingLine
from simulators.pump_model import ALARM_KINDS, DeliveryState, PumpModelError, SimulatedPump

SERIAL_KEEPALIVE_S = 15.0  # §3.7
PERMIT_REPLY = "REMOTE_CTRL^ENABLED^****^PERMIT^0^ms"  # §3.4, captured


def security_code(serial: str) -> str:
    """§3.4: the code in ``REMOTE_CTRL^ENABLED^<code>`` is the CRC of the serial number."""
    return crc_text(serial.encode("ascii")).decode("ascii")


def _corrupt(wire: bytes) -> bytes:
    damaged = bytearray(wire)
    damaged[-2] = ord("0") if damaged[-2] != ord("0") else ord("1")  # last CRC character
    return bytes(damaged)


class AlarisLine(DecodingLine[Frame]):
    """One Alaris-style pump on its own serial line.

    A frame with a bad CRC, cut by ESC, or noise gets no reply (§3.8): it is only kept in
    ``frame_errors``.
    """

    def __init__(
        self,
        pump: SimulatedPump,
        *,
        faults: Faults | None = None,
        queries_need_remote: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(FrameDecoder())
        self.pump = pump
        self.faults = faults or Faults()
        self.queries_need_remote = queries_need_remote
        self._clock = clock
        self.remote_ctrl = False
        self.remote_cfg = False
        self.serial_started = False
        self._last_valid = clock()
        self.received: list[str] = []
        """Every valid request body, in order (tests inspect what a client sent)."""

    def tick(self) -> list[Outgoing]:
        """§3.7: an infusion started over the serial line needs traffic every 15 s."""
        if self.serial_started and self._clock() - self._last_valid > SERIAL_KEEPALIVE_S:
            self.serial_started = False
            self.pump.set_alarm("comm_timeout")
        return []

    # -- requests ----------------------------------------------------------------------

    def _request(self, frame: Frame) -> list[Outgoing]:
        self._last_valid = self._clock()
        text = frame.body.decode("ascii")
        self.received.append(text)
        name, *fields = text.split("^")
        if name in ("REMOTE_CTRL", "REMOTE_CFG"):
            return self._remote(name, fields)
        if not fields and name in _QUERIES:
            if self.queries_need_remote and not self.remote_ctrl:
                return []
            return self._reply(_QUERIES[name](self))
        if name in _COMMANDS and self.remote_ctrl:
            try:
                answer = _COMMANDS[name](self, fields)
            except (PumpModelError, ValueError, InvalidOperation):
                return []  # the pump's refusal format is unknown (§3.5): no reply
            return self._reply(answer or text)
        return []

    def _remote(self, name: str, fields: list[str]) -> list[Outgoing]:
        serial = self.pump.identity.serial_number
        if fields == ["ENABLED", security_code(serial)]:
            setattr(self, "remote_ctrl" if name == "REMOTE_CTRL" else "remote_cfg", True)
            return self._reply(PERMIT_REPLY if name == "REMOTE_CTRL" else f"{name}^ENABLED")
        if fields == ["DISABLED"]:
            setattr(self, "remote_ctrl" if name == "REMOTE_CTRL" else "remote_cfg", False)
            return self._reply(f"{name}^DISABLED")
        return []  # wrong security code: ignored

    def _reply(self, body: str) -> list[Outgoing]:
        return faulty_reply(self.faults, encode_frame(body.encode("ascii")), _corrupt)

    # -- query answers (§3.5) ----------------------------------------------------------

    def mode(self) -> str:
        state = self.pump.state
        stopping = [a for a in self.pump.alarms if ALARM_KINDS.get(a.kind, True)]
        if stopping and state is DeliveryState.STOPPED:
            return "ALARM"
        return {
            DeliveryState.INFUSING: "INFUSING",
            DeliveryState.KVO: "KVO",
            DeliveryState.PAUSED: "PAUSED",
            DeliveryState.STOPPED: "STOPPED",
            DeliveryState.IDLE: "IDLE",
        }[state]

    def alarm_codes(self) -> list[str]:
        return [codec.alarm_code(a.kind) for a in self.pump.alarms]

    def _inf(self) -> str:
        pump = self.pump
        program = pump.program
        remaining = pump.remaining_ml
        rate = program.rate_ml_h if program else Decimal(0)
        if remaining is None or not pump.current_rate_ml_h:
            time_left = "--"
        else:
            time_left = f"{int(remaining * 60 / pump.current_rate_ml_h)}"
        codes = self.alarm_codes()
        record = codec.InfRecord(
            serial_number=pump.identity.serial_number,
            alarm_notification=codes[0] if codes else codec.NO_NOTIFICATION,
            mode=self.mode(),
            rate=Quantity(rate, "mL/h"),
            volume_infused=Quantity(pump.volume_infused_ml, "mL"),
            pressure="17.91 mmHg",
            time_remaining=time_left,
            log_type="EVENT",
            log_entry="127904",
        )
        return codec.format_inf(record).decode("ascii")

    def _vtbi(self) -> str:
        program = self.pump.program
        if program is None or program.vtbi_ml is None:
            return "INF_VTBI^DEACT^^ml^"
        return f"INF_VTBI^ACTIV^{program.vtbi_ml:.3f}^ml^STOP"

    def _alarm(self) -> str:
        alarms = self.pump.alarms
        if not alarms:
            return codec.format_alarm(codec.AlarmReply(codec.NO_ALARM, " ", " ")).decode("ascii")
        kind = alarms[0].kind
        return codec.format_alarm(codec.AlarmReply(codec.alarm_code(kind), kind.replace("_", " "), " ")).decode("ascii")

    def _rate(self) -> str:
        program = self.pump.program
        return f"INF_RATE^{(program.rate_ml_h if program else Decimal(0)):.2f}^ml/h"

    # -- state-changing commands (§3.6), accepted from test clients only -------------

    def _start(self, fields: list[str]) -> None:
        self.pump.start()
        self.serial_started = True

    def _stop(self, fields: list[str]) -> None:
        self.pump.pause() if self.pump.state is DeliveryState.INFUSING else self.pump.stop()
        self.serial_started = False

    def _set_rate(self, fields: list[str]) -> str:
        if len(fields) != 2 or fields[1] != "ml/h":
            raise ValueError(f"INF_RATE needs <rate>^ml/h, got {fields}")
        rate = Decimal(fields[0])
        self.pump.titrate(rate_ml_h=rate)
        return f"INF_RATE^{rate:.2f}^ml/h"

    def _set_vtbi(self, fields: list[str]) -> None:
        if fields == ["DEACT"]:
            self.pump.set_vtbi(None)
        elif len(fields) == 4 and fields[0] == "ACTIV" and fields[2] == "ml":
            self.pump.set_vtbi(Decimal(fields[1]))
        else:
            raise ValueError(f"INF_VTBI needs ACTIV^<vol>^ml^STOP or DEACT, got {fields}")

    def _clear_vi(self, fields: list[str]) -> None:
        self.pump.clear_volume()

    def _accept(self, fields: list[str]) -> None:
        return None


_QUERIES: dict[str, Callable[[AlarisLine], str]] = {
    # An unreadable identity (scenario step) answers with an empty field.
    "INST_SERIALNO": lambda s: f"INST_SERIALNO^{s.pump.identity.serial_number if s.pump.identity.readable else ''}",
    "COMMS_PROTOCOL": lambda s: f"COMMS_PROTOCOL^{s.pump.identity.firmware if s.pump.identity.readable else ''}",
    "COMMS_RESPONSE_MAX": lambda s: "COMMS_RESPONSE_MAX^4000^ms",
    "INF": AlarisLine._inf,
    "INF_VTBI": AlarisLine._vtbi,
    "INF_RATE": AlarisLine._rate,
    "INF_VI": lambda s: f"INF_VI^{s.pump.volume_infused_ml:.3f}^ml",
    "ALARM": AlarisLine._alarm,
    "SYRINGE_STATUS": lambda s: "SYRINGE_STATUS^BD PLASTIPAK^ 50^CONF",
    "INF_RATE_MAX_SYRINGE": lambda s: "INF_RATE_MAX_SYRINGE^1200.00^ml/h",
}
_COMMANDS: dict[str, Callable[[AlarisLine, list[str]], str | None]] = {
    "INF_START": AlarisLine._start,
    "INF_STOP": AlarisLine._stop,
    "INF_RATE": AlarisLine._set_rate,
    "INF_VTBI": AlarisLine._set_vtbi,
    "INF_VI_CLEAR": AlarisLine._clear_vi,
    "INF_BOLUS": AlarisLine._accept,
    "REMQUERY": AlarisLine._accept,
}
