"""The Alaris-style read-only driver (reference §3).

Decisions, with the spec section behind each:

* **No remote control.** The driver never sends ``REMOTE_CTRL^ENABLED`` or
  ``REMOTE_CFG^ENABLED`` (§0 rule 3, §3.4): they hand control to the host and may arm a
  communications watchdog that stops the infusion when the host goes quiet. Both open
  clients enable it before querying, and whether a real pump answers the queries below
  *without* it is **not established** (§3.4). If it does not, every query times out: the
  poller reports the pump communication-lost -- a visible failure, never a silent
  workaround. Settle it on a real pump before calling this driver done.
* Only the §3.5 queries, each a bare command name: the encoder takes no fields at all, so
  a query can never turn into its set form (``INF_RATE`` vs ``INF_RATE^12.00^ml/h``, §0
  rule 2).
* Every reply's CRC and echoed name are checked (§3.3; the open clients check neither).
* ``INF`` is split at ``|`` by the framer before the fields are split (§3.5).
* The serial number in ``INF`` field 1 is compared with the identified one on every poll: a
  pump swapped on the same port is re-identified at once.
* After a timeout or a bad frame the driver waits for the line to go quiet and reports what
  it drained, so a late reply is never taken for the next answer
  (:class:`drivers.base.StreamDriver`, shared with the NE-1000 driver).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from drivers.alaris import codec
from drivers.alaris.alarms import KNOWN_KINDS
from drivers.alaris.framing import DroppedBytes, Frame, FrameDecoder, encode_body, encode_frame
from drivers.base import StreamDriver
from drivers.errors import FrameError, byte_shape
from drivers.line import Line
from drivers.model import Alarm, AlarmPriority, ChannelSnapshot, PumpIdentity, PumpSnapshot, Quantity
from drivers.transport.link import Link
from drivers.values import ValueWarnings

log = logging.getLogger("pumpgw.drivers.alaris")
_warnings = ValueWarnings(log)
T = TypeVar("T")

# §3.5 transcribed: the read-only queries. Never REMOTE_CTRL / REMOTE_CFG (§3.4, §3.6).
QUERIES: dict[str, str] = {
    "serial": "INST_SERIALNO",
    "protocol": "COMMS_PROTOCOL",
    "response_max": "COMMS_RESPONSE_MAX",
    "status": "INF",
    "vtbi": "INF_VTBI",
    "rate": "INF_RATE",
    "volume": "INF_VI",
    "alarm": "ALARM",
    "syringe": "SYRINGE_STATUS",
    "rate_max": "INF_RATE_MAX_SYRINGE",
}


class AlarisDriver(StreamDriver[Frame]):
    """One Alaris-style pump on its own RS-232 line (38400 8N1, §3.2)."""

    protocol = "alaris"
    ALLOWED_COMMANDS = frozenset(QUERIES.values())
    BAUDRATE = 38400
    NOISE = DroppedBytes
    _log = log

    def __init__(
        self, line: Line | Link, *, pump_id: str, address: int | None = None, request_timeout_s: float = 1.0
    ) -> None:
        super().__init__(
            line, pump_id=pump_id, address=address, request_timeout_s=request_timeout_s, decoder=FrameDecoder()
        )
        self._identity: PumpIdentity | None = None

    # -- public, read-only -------------------------------------------------------------

    async def identify(self) -> PumpIdentity:
        serial = await self._ask("serial", lambda body: codec.parse_single(body, "INST_SERIALNO"))
        revision = await self._ask("protocol", lambda body: codec.parse_single(body, "COMMS_PROTOCOL"))
        # Only the protocol revision string is known as a version (§3.5); the model name
        # is not reported by any known query.
        self._identity = PumpIdentity(
            manufacturer=codec.MANUFACTURER, model="Alaris-style", serial_number=serial, firmware=revision
        )
        return self._identity

    async def poll(self) -> PumpSnapshot:
        identity = self._identity or await self.identify()
        inf = await self._ask("status", codec.parse_inf)
        for rejected in inf.rejected:
            _warnings.rejected(self.pump_id, rejected)
        if inf.serial_number != identity.serial_number:
            log.warning(
                "pump %s on %s: INF reports serial %r, identified %r; identifying again",
                self.pump_id,
                self.link.name,
                inf.serial_number,
                identity.serial_number,
            )
            identity = await self.identify()
        vtbi = await self._ask("vtbi", codec.parse_vtbi)
        alarm = await self._ask("alarm", codec.parse_alarm)
        alarms = self._alarms(inf, alarm)
        channel = ChannelSnapshot(
            channel_id="1",
            state=inf.state,
            rate=inf.rate,
            vtbi=vtbi,
            volume_infused=inf.volume_infused,
            alarms=alarms,
        )
        return PumpSnapshot(
            pump_id=self.pump_id,
            identity=identity,
            channels=(channel,),
            received_at=datetime.now(UTC),
            raw_status=f"mode={inf.mode} notification={inf.alarm_notification} alarm={alarm.code}",
        )

    async def rate(self) -> Quantity:
        return await self._ask("rate", lambda body: codec.parse_value_reply(body, "INF_RATE"))

    async def volume_infused(self) -> Quantity:
        return await self._ask("volume", lambda body: codec.parse_value_reply(body, "INF_VI"))

    async def response_max(self) -> list[str]:
        """``COMMS_RESPONSE_MAX`` fields, uninterpreted (meaning U, §3.3)."""
        return await self._ask("response_max", lambda body: codec.reply_fields(body, "COMMS_RESPONSE_MAX"))

    async def syringe_status(self) -> list[str]:
        return await self._ask("syringe", lambda body: codec.reply_fields(body, "SYRINGE_STATUS"))

    async def rate_max_syringe(self) -> Quantity:
        return await self._ask("rate_max", lambda body: codec.parse_value_reply(body, "INF_RATE_MAX_SYRINGE"))

    # -- alarms ----------------------------------------------------------------------

    @staticmethod
    def _alarms(inf: codec.InfRecord, alarm: codec.AlarmReply) -> tuple[Alarm, ...]:
        codes: list[tuple[str, str]] = []
        if alarm.active:
            codes.append((alarm.code, alarm.text.strip()))
        notification = inf.alarm_notification
        if notification not in ("", codec.NO_NOTIFICATION, codec.NO_ALARM) and notification not in {
            c for c, _ in codes
        }:
            codes.append((notification, ""))
        out = []
        for code, text in codes:
            kind = codec.alarm_kind(code)
            priority = KNOWN_KINDS.get(kind, AlarmPriority.HIGH)  # unknown codes: assume the worst
            out.append(Alarm(code=code, kind=kind, text=text or code, priority=priority))
        return tuple(out)

    # -- request/reply -----------------------------------------------------------------

    def _encode_request(self, command: str) -> bytes:
        return encode_frame(encode_body(command))

    async def _ask(self, query: str, parse: Callable[[bytes], T]) -> T:
        command = QUERIES[query]
        frame = await self._exchange_frame(command)
        try:
            return parse(frame.body)
        except FrameError as exc:
            raise exc.located(pump_id=self.pump_id, link=self.link.name) from None

    def _mismatch(self, frame: Frame, command: str) -> codec.EchoMismatch | None:
        """A valid frame echoing another command is a late reply (§3.3: check the echo)."""
        echo = frame.body.split(b"^", 1)[0]
        if echo == command.encode("ascii"):
            return None
        return codec.EchoMismatch(expected=command, got=echo.decode("ascii", "replace"), data=frame.body)

    def _discard_late_reply(self, frame: Frame) -> None:
        self.dropped_bytes += len(frame.body)
        log.warning(
            "pump %s on %s: discarded a late reply (%s) while resynchronising",
            self.pump_id,
            self.link.name,
            byte_shape(frame.body),  # pump text stays out of the log
        )
