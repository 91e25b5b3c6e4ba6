"""Alaris-style reply content (reference §3.5): parse and format, no I/O.

The simulator formats with these functions and the driver parses with them, so the two
cannot drift. What the reference establishes and what is pumpgw's own convention:

* ``INF`` is a 14-field record (§3.5 table); positions and units are from one driver (grade
  C). Fields 4 (rate) and 7 (volume infused) are numbers with units in fields 5 and 8.
* The code lists of ``INF`` field 2 (alarm notification) and field 3 (mode) are **unknown**
  beyond ``-``, ``SET`` and ``AL_NOALM`` (§3.5). :data:`MODE_STATES` and the ``AL_<KIND>``
  alarm codes are *pumpgw simulator conventions*; any other code is kept verbatim as
  ``unknown`` (state) or as an alarm of kind ``unknown`` -- never dropped (design §2 inv. 6).
* ``INF_VTBI``, ``INF_RATE`` and ``INF_VI`` reply shapes are assumptions (§3.5): VTBI is
  field 2 of at least four fields, empty = no VTBI; rate and volume are ``<number>^<unit>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from drivers.alaris.alarms import KNOWN_KINDS
from drivers.errors import FrameError
from drivers.model import ChannelState, Quantity
from drivers.values import NumberSpec, ValueRejected
from drivers.values import parse_number as parse_strict

MANUFACTURER = "BD/CareFusion (Alaris-style)"
INF_FIELDS = 14
NO_ALARM = "AL_NOALM"  # §3.5, the only alarm text in the sources
NO_NOTIFICATION = "-"  # INF field 2 in the §3.5 example

UNITS: dict[str, str] = {"ml/h": "mL/h", "ml": "mL", "mmHg": "mm[Hg]"}

# pumpgw simulator convention (§3.5: the mode code list is unknown).
MODE_STATES: dict[str, ChannelState] = {
    "INFUSING": ChannelState.INFUSING,
    "KVO": ChannelState.KVO,
    "PAUSED": ChannelState.PAUSED,
    "STOPPED": ChannelState.STOPPED,
    "IDLE": ChannelState.IDLE,
    "ALARM": ChannelState.ALARM,
}
_NUMBER = re.compile(r"\d{1,6}(?:\.\d{1,4})?", re.ASCII)
# Documented ranges (docs/pump-values.md): unsigned; rate up to 9999.99 mL/h (the simulator's
# INF_RATE_MAX_SYRINGE is 1200), volumes up to 99999.999 mL; 2 / 3 decimals as printed, up to
# 4 accepted. A well-formed number outside the range makes that field unknown, not the frame bad.
RATE = NumberSpec("rate", Decimal(0), Decimal("9999.99"), places=4, int_digits=6)
VOLUME = NumberSpec("volume", Decimal(0), Decimal("99999.999"), places=4, int_digits=6)


class EchoMismatch(FrameError):
    """A valid frame whose field 0 is not the command just sent (§3.3: check the echo)."""

    def __init__(self, *, expected: str, got: str, data: bytes) -> None:
        self.expected = expected
        self.got = got
        super().__init__(f"reply echoes {got!r}, expected {expected!r}", offset=0, data=data)


def _fail(reason: str, body: bytes, offset: int = 0) -> FrameError:
    return FrameError(reason, offset=offset, data=body)


def reply_fields(body: bytes, command: str) -> list[str]:
    """Fields after the echo; raises :class:`EchoMismatch` if field 0 is not ``command``."""
    try:
        fields = body.decode("ascii").split("^")
    except UnicodeDecodeError as exc:
        raise _fail("reply body is not ASCII", body, exc.start) from exc
    if fields[0] != command:
        raise EchoMismatch(expected=command, got=fields[0], data=body)
    return fields[1:]


def parse_number(text: str, what: str, body: bytes, spec: NumberSpec | None = None) -> Decimal:
    """A number in the reply's syntax (else :class:`FrameError`); :class:`ValueRejected` if
    it is outside ``spec``'s documented range."""
    if _NUMBER.fullmatch(text) is None:
        raise _fail(f"expected a decimal number for {what}, got {text!r}", body)
    spec = spec or NumberSpec(what, Decimal(0), Decimal("999999.9999"), places=4, int_digits=6)
    return parse_strict(text, spec)


def parse_quantity(value: str, unit: str, what: str, body: bytes, spec: NumberSpec | None = None) -> Quantity:
    if unit not in UNITS:
        raise _fail(f"expected a unit in {sorted(UNITS)} for {what}, got {unit!r}", body)
    return Quantity(parse_number(value, what, body, spec), UNITS[unit])


def _lenient(
    value: str, unit: str, what: str, body: bytes, spec: NumberSpec, rejected: list[ValueRejected]
) -> Quantity | None:
    try:
        return parse_quantity(value, unit, what, body, spec)
    except ValueRejected as exc:
        rejected.append(exc)
        return None


@dataclass(frozen=True, slots=True)
class InfRecord:
    """The ``INF`` status record (§3.5), fields 1-13 after the echo."""

    serial_number: str
    alarm_notification: str
    mode: str
    rate: Quantity | None
    volume_infused: Quantity | None
    pressure: str
    time_remaining: str
    log_type: str
    log_entry: str
    rejected: tuple[ValueRejected, ...] = ()  # fields out of their documented range (unknown)

    @property
    def state(self) -> ChannelState:
        return MODE_STATES.get(self.mode, ChannelState.UNKNOWN)


def parse_inf(body: bytes) -> InfRecord:
    """Parse an ``INF`` reply body (the ``|CRC`` already split off by the framer, §3.5)."""
    fields = reply_fields(body, "INF")
    if len(fields) != INF_FIELDS - 1:
        raise _fail(f"INF record has {len(fields) + 1} fields, expected {INF_FIELDS}", body)
    (
        serial,
        notification,
        mode,
        rate,
        rate_unit,
        _unused,
        volume,
        volume_unit,
        pressure,
        pressure_unit,
        remaining,
        log_type,
        log_entry,
    ) = fields
    rejected: list[ValueRejected] = []
    return InfRecord(
        serial_number=serial,
        alarm_notification=notification,
        mode=mode,
        rate=_lenient(rate, rate_unit, "INF rate (field 4)", body, RATE, rejected),
        volume_infused=_lenient(volume, volume_unit, "INF volume infused (field 7)", body, VOLUME, rejected),
        pressure=f"{pressure} {pressure_unit}".strip(),
        time_remaining=remaining,
        log_type=log_type,
        log_entry=log_entry,
        rejected=tuple(rejected),
    )


def format_inf(record: InfRecord, *, rate_unit: str = "ml/h", volume_unit: str = "ml") -> bytes:
    """The ``INF`` body a pump sends: rate with 2 decimals, volume with 3 (§3.5 example)."""
    pressure, _, pressure_unit = record.pressure.partition(" ")
    if record.rate is None or record.volume_infused is None:
        raise ValueError("an INF record a pump sends always has a rate and a volume infused")
    fields = [
        "INF",
        record.serial_number,
        record.alarm_notification,
        record.mode,
        f"{record.rate.value:.2f}",
        rate_unit,
        "",
        f"{record.volume_infused.value:.3f}",
        volume_unit,
        pressure,
        pressure_unit,
        record.time_remaining,
        record.log_type,
        record.log_entry,
    ]
    return "^".join(fields).encode("ascii")


def parse_single(body: bytes, command: str) -> str:
    """Replies with exactly one field after the echo (``INST_SERIALNO``, ``COMMS_PROTOCOL``)."""
    fields = reply_fields(body, command)
    if len(fields) != 1 or not fields[0]:
        raise _fail(f"{command} reply needs exactly one non-empty field, got {len(fields)}", body)
    return fields[0]


def parse_vtbi(body: bytes) -> Quantity | None:
    """``INF_VTBI^<state>^<volume>^<unit>[^...]``; empty volume = no VTBI (§3.5, assumed shape)."""
    fields = reply_fields(body, "INF_VTBI")
    if len(fields) < 3:
        raise _fail(f"INF_VTBI reply needs at least 4 fields, got {len(fields) + 1}", body)
    if not fields[1]:
        return None
    try:
        return parse_quantity(fields[1], fields[2] or "ml", "INF_VTBI volume (field 2)", body, VOLUME)
    except ValueRejected:
        return None  # out of its documented range: unknown (the INF record's warning covers the pump)


def parse_value_reply(body: bytes, command: str) -> Quantity:
    """``INF_RATE^<number>^ml/h`` or ``INF_VI^<number>^ml`` (assumed shapes, §3.5)."""
    fields = reply_fields(body, command)
    if len(fields) != 2:
        raise _fail(f"{command} reply needs <number>^<unit>, got {len(fields)} field(s)", body)
    return parse_quantity(fields[0], fields[1], command, body)


@dataclass(frozen=True, slots=True)
class AlarmReply:
    """``ALARM^<code>^<text>^<extra>`` (§3.5, simulator-only shape)."""

    code: str
    text: str
    extra: str = " "

    @property
    def active(self) -> bool:
        return self.code != NO_ALARM


def parse_alarm(body: bytes) -> AlarmReply:
    fields = reply_fields(body, "ALARM")
    if not fields or not fields[0]:
        raise _fail("ALARM reply has no alarm code field", body)
    return AlarmReply(fields[0], fields[1] if len(fields) > 1 else "", fields[2] if len(fields) > 2 else "")


def format_alarm(reply: AlarmReply) -> bytes:
    return "^".join(("ALARM", reply.code, reply.text, reply.extra)).encode("ascii")


def alarm_code(kind: str) -> str:
    """pumpgw simulator convention: ``occlusion`` -> ``AL_OCCLUSION``."""
    return f"AL_{kind.upper()}"


def alarm_kind(code: str) -> str:
    """Inverse of :func:`alarm_code` for the kinds pumpgw knows; anything else is ``unknown``."""
    if code.startswith("AL_") and code[3:].lower() in KNOWN_KINDS:
        return code[3:].lower()
    return "unknown"
