"""BCC-style requests and response records (reference §6.5): parse and format, no I/O.

Response user data: records separated by RS (0x1E); each record is
``<relative-seconds>,<address>,<parameter>[,<value>]``. Address: ``501`` + pillar digit
(``0``-``3``) + slot character (``0``-``9``, ``A``-``O``), or the 6-character form with a
two-digit decimal slot seen with BCC 3.30 (``501110`` = pillar 1, slot 10). Pillar 0 / slot
0 is the rack itself. Values ``_NV`` / ``_NA`` mean "no value" and become ``None``.

Which parameters a driver may interpret (§6.5, §8): ``GNACK``, ``GNNEW``, ``GNMODEL``,
``INRT`` (rate) and ``GNERR``. Every other name (``INVI``, ``DSSTATUS`` ...) is kept verbatim
and **not interpreted** until the vendor document confirms its meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.errors import RetryLater
from drivers.errors import DriverError, FrameError

RS = b"\x1e"
SLOT_CHARS = "0123456789ABCDEFGHIJKLMNO"  # slot 0 (rack level), 1-9, then A-O = 10-24
NO_VALUE = frozenset({"_NV", "_NA"})
ALIVE, VERSION, GET = "ADMIN:ALIVE", "ADMIN:VERSION", "MEM:GET"

# §6.5 GNERR codes [D4].
GNERR_MEANINGS: dict[str, str] = {
    "11": "no further data available / no pumps in system",
    "39": "pump was removed",
    "68": "wrong syntax",
    "811": "wrong pump address",
}
_RECORD_SECONDS = re.compile(rb"\d{1,10}")


@dataclass(frozen=True, slots=True)
class Record:
    seconds: int
    pillar: int
    slot: int
    parameter: str
    value: str | None = None  # None: no value, _NV or _NA

    @property
    def position(self) -> tuple[int, int]:
        return self.pillar, self.slot


class PumpNotInSlot(DriverError, RetryLater):
    """The rack says the slot holds no pump (``GNERR`` 39 removed, 811 wrong address) or the
    slot is simply absent from a complete rack response: silence for that pump only."""

    def __init__(self, pump_id: str, link: str, pillar: int, slot: int, code: str | None) -> None:
        self.pump_id, self.link, self.pillar, self.slot, self.code = pump_id, link, pillar, slot, code
        why = f"GNERR {code} ({GNERR_MEANINGS.get(code, 'unknown code')})" if code else "not in the rack's response"
        super().__init__(f"pump {pump_id} on {link}: pillar {pillar} slot {slot}: {why}")


def slot_char(slot: int) -> str:
    if not 0 <= slot < len(SLOT_CHARS):
        raise ValueError(f"slot must be 0-24, got {slot}")
    return SLOT_CHARS[slot]


def format_address(pillar: int, slot: int) -> str:
    if not 0 <= pillar <= 3:
        raise ValueError(f"pillar must be 0-3, got {pillar}")
    return f"501{pillar}{slot_char(slot)}"


def getslot_request(pillar: int, slot: int) -> str:
    """``MEM:GETSLOT#<p><s>`` (§6.5): pillar 1-3, slot 1-24."""
    if not (1 <= pillar <= 3 and 1 <= slot <= 24):
        raise ValueError(f"GETSLOT needs pillar 1-3 and slot 1-24, got {pillar}/{slot}")
    return f"MEM:GETSLOT#{pillar}{slot_char(slot)}"


def parse_address(text: str) -> tuple[int, int]:
    if len(text) == 5 and text.startswith("501") and text[3] in "0123" and text[4] in SLOT_CHARS:
        return int(text[3]), SLOT_CHARS.index(text[4])
    if len(text) == 6 and text.startswith("501") and text[3] in "0123" and text[4:].isdigit() and int(text[4:]) <= 24:
        return int(text[3]), int(text[4:])
    raise ValueError(f"expected 501<pillar 0-3><slot 0-9|A-O> or 501<pillar><2 digits>, got {text!r}")


def parse_records(data: bytes) -> list[Record]:
    """Every record of one frame's user data; raises :class:`FrameError` at the bad record."""
    records: list[Record] = []
    position = 0
    for chunk in data.split(RS):
        parts = chunk.split(b",")
        try:
            if not 3 <= len(parts) <= 4:
                raise ValueError(f"expected 3 or 4 comma-separated parts, got {len(parts)}")
            if not _RECORD_SECONDS.fullmatch(parts[0]):
                raise ValueError(f"relative seconds must be an unsigned integer, got {parts[0]!r}")
            pillar, slot = parse_address(parts[1].decode("latin-1"))
            parameter = parts[2].decode("latin-1")
            if not parameter:
                raise ValueError("empty parameter name")
        except ValueError as exc:
            raise FrameError(f"bad record: {exc}", offset=position, data=chunk) from None
        value = parts[3].decode("latin-1") if len(parts) == 4 else None
        records.append(Record(int(parts[0]), pillar, slot, parameter, None if value in NO_VALUE else value))
        position += len(chunk) + 1
    return records


def format_record(record: Record, *, raw_value: str | None = None) -> bytes:
    value = raw_value if raw_value is not None else record.value
    text = f"{record.seconds},{format_address(record.pillar, record.slot)},{record.parameter}"
    return (text if value is None else f"{text},{value}").encode("latin-1")


def format_records(records: list[Record]) -> bytes:
    return RS.join(format_record(r) for r in records)
