"""NE-1000 reply data and values (reference §2.3, §2.7, §2.8): parse and format, no I/O.

The simulator formats with the same functions the driver parses with, so they cannot drift
(style.md, "Tests and simulators"); nesp-lib checks both independently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from drivers.errors import FrameError
from drivers.model import Quantity
from drivers.values import NumberSpec, ValueRejected, parse_number

MANUFACTURER = "New Era Pump Systems"

# §2.7 status character after the address.
STATUS_MEANINGS: dict[str, str] = {
    "I": "infusing",
    "W": "withdrawing",
    "S": "pumping program stopped",
    "P": "pumping program paused",
    "T": "pause phase",
    "U": "operational trigger wait",
    "X": "purging",
}
ALARM_STATUS = "A"

# §2.7 alarm types: code -> (pumpgw kind, text).
ALARM_TYPES: dict[str, tuple[str, str]] = {
    "R": ("pump_reset", "pump was reset (power was interrupted)"),
    "S": ("motor_stalled", "pump motor stalled"),
    "T": ("comm_timeout", "safe-mode communications time-out"),
    "E": ("program_error", "pumping program error"),
    "O": ("phase_out_of_range", "pumping program phase out of range"),
}

# §2.7 command errors after "?".
COMMAND_ERRORS: dict[str, str] = {
    "": "command not recognised",
    "NA": "command not currently applicable",
    "OOR": "command data out of range",
    "COM": "invalid communications packet received",
    "IGN": "command ignored due to a simultaneous new phase start",
}

# §2.8 units as the pump spells them -> UCUM.
RATE_UNITS: dict[str, str] = {"MM": "mL/min", "MH": "mL/h", "UM": "uL/min", "UH": "uL/h"}
VOLUME_UNITS: dict[str, str] = {"ML": "mL", "UL": "uL"}
DIRECTIONS = ("INF", "WDR")


@dataclass(frozen=True, slots=True)
class Reply:
    """``<address><status>[<data> | ?<error>]`` (§2.3), or ``<address>A?<type>`` for an alarm."""

    address: int
    status: str
    alarm: str | None = None
    error: str | None = None
    data: str = ""

    @property
    def text(self) -> str:
        return f"{self.address:02d}{self.status}"


_REPLY = re.compile(r"(?P<addr>\d{1,2})(?P<status>[A-Z])(?P<rest>.*)", re.ASCII | re.DOTALL)


def _fail(reason: str, data: bytes | str, offset: int = 0) -> FrameError:
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    return FrameError(reason, offset=offset, data=raw)


def parse_reply(data: bytes) -> Reply:
    """Parse response data; raises :class:`FrameError` naming the offset within ``data``."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise _fail("reply data is not ASCII", data, exc.start) from exc
    match = _REPLY.fullmatch(text)
    if match is None:
        raise _fail("expected <address digits><status letter>", data)
    address = int(match["addr"])
    status = match["status"]
    rest = match["rest"]
    status_at = match.start("status")
    if status == ALARM_STATUS:
        # nesp-lib reads only the character after "A?" and ignores the rest (§2.7).
        if len(rest) < 2 or rest[0] != "?" or rest[1] not in ALARM_TYPES:
            raise _fail(
                f"expected A?<{'|'.join(ALARM_TYPES)}> after the address, got {text[status_at:]!r}", data, status_at
            )
        return Reply(address, status, alarm=rest[1], data=rest[2:])
    if status not in STATUS_MEANINGS:
        raise _fail(f"unknown status character {status!r}", data, status_at)
    if rest.startswith("?"):
        code = rest[1:]
        if code not in COMMAND_ERRORS:
            raise _fail(f"unknown command error {rest!r}", data, status_at + 1)
        return Reply(address, status, error=code)
    return Reply(address, status, data=rest)


def format_reply(reply: Reply) -> str:
    """The response data a pump sends (two-digit address, §2.12)."""
    head = f"{reply.address:02d}"
    if reply.alarm is not None:
        return f"{head}A?{reply.alarm}"
    if reply.error is not None:
        return f"{head}{reply.status}?{reply.error}"
    return f"{head}{reply.status}{reply.data}"


# §2.3: at most 4 digits and one point, at most 3 digits right of it. The manual also allows
# forms without a point, so parsing accepts "5", "5.", ".5" and "0.500" alike.
_FLOAT = r"(\d{1,4}(?:\.\d{0,3})?|\.\d{1,3})"
_QUANTITY = re.compile(_FLOAT + r"([A-Z]{2})", re.ASCII)
_DISPENSED = re.compile(r"I" + _FLOAT + r"W" + _FLOAT + r"([A-Z]{2})", re.ASCII)
_VERSION = re.compile(r"NE(\d+)(?:X(\d*))?V(\d+)\.(\d+)", re.ASCII)
_DIAMETER = re.compile(_FLOAT, re.ASCII)


# §2.3 as a strict spec: unsigned, at most 4 integer digits, at most 3 decimals, < 10000.
NE_FLOAT = NumberSpec("float", Decimal(0), Decimal("9999.999"), places=3, int_digits=4)


def _decimal(text: str) -> Decimal:
    """The one strict routine (:mod:`drivers.values`); the regex above already bounds the
    syntax, so a rejection here is a frame error, never an exception of another type."""
    try:
        return parse_number(text, NE_FLOAT)
    except ValueRejected as exc:
        raise _fail(str(exc), text) from None


def parse_rate(data: str) -> Quantity:
    match = _QUANTITY.fullmatch(data)
    if match is None or match[2] not in RATE_UNITS:
        raise _fail(f"expected <float><{'|'.join(RATE_UNITS)}> for RAT, got {data!r}", data)
    return Quantity(_decimal(match[1]), RATE_UNITS[match[2]])


def parse_volume(data: str) -> Quantity:
    match = _QUANTITY.fullmatch(data)
    if match is None or match[2] not in VOLUME_UNITS:
        raise _fail(f"expected <float><ML|UL> for VOL, got {data!r}", data)
    return Quantity(_decimal(match[1]), VOLUME_UNITS[match[2]])


def parse_dispensed(data: str) -> tuple[Quantity, Quantity]:
    """``I<infused>W<withdrawn><units>`` -> (infused, withdrawn)."""
    match = _DISPENSED.fullmatch(data)
    if match is None or match[3] not in VOLUME_UNITS:
        raise _fail(f"expected I<float>W<float><ML|UL> for DIS, got {data!r}", data)
    unit = VOLUME_UNITS[match[3]]
    return Quantity(_decimal(match[1]), unit), Quantity(_decimal(match[2]), unit)


def parse_diameter(data: str) -> Quantity:
    if _DIAMETER.fullmatch(data) is None:
        raise _fail(f"expected <float> (mm) for DIA, got {data!r}", data)
    return Quantity(_decimal(data), "mm")


def parse_direction(data: str) -> str:
    if data not in DIRECTIONS:
        raise _fail(f"expected INF or WDR for DIR, got {data!r}", data)
    return data


@dataclass(frozen=True, slots=True)
class Version:
    """``NE<model>[X[<upgrade>]]V<major>.<minor>`` (§2.8)."""

    model_number: int
    major: int
    minor: str
    upgrade: str | None = None

    @property
    def model(self) -> str:
        return f"NE-{self.model_number}"

    @property
    def firmware(self) -> str:
        upgrade = "" if self.upgrade is None else f" X{self.upgrade}"
        return f"{self.major}.{self.minor}{upgrade}"


def parse_version(data: str) -> Version:
    match = _VERSION.fullmatch(data)
    if match is None:
        raise _fail(f"expected NE<model>V<major>.<minor> for VER, got {data!r}", data)
    return Version(int(match[1]), int(match[3]), match[4], match[2])


def format_version(version: Version) -> str:
    upgrade = "" if version.upgrade is None else f"X{version.upgrade}"
    return f"NE{version.model_number}{upgrade}V{version.major}.{version.minor}"


def format_float(value: Decimal) -> str:
    """Four significant digits, always with a point (nesp-lib rejects "5", §2.8), truncated.

    Values of 10000 or more cannot be shown by the pump; they raise ``ValueError``.
    """
    if value < 0 or value >= 10000:
        raise ValueError(f"NE-1000 floats are 0 <= x < 10000, got {value}")
    digits_left = len(str(int(value))) if value >= 1 else 1
    places = min(3, 4 - digits_left)
    quantum = Decimal(1).scaleb(-places)
    text = f"{value.quantize(quantum, rounding=ROUND_DOWN):f}"
    return text if "." in text else text + "."


def format_quantity(value: Decimal, units: str) -> str:
    return f"{format_float(value)}{units}"


def format_dispensed(infused: Decimal, withdrawn: Decimal, units: str) -> str:
    return f"I{format_float(infused)}W{format_float(withdrawn)}{units}"
