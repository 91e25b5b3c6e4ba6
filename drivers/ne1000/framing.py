"""NE-1000 framing: pure functions and stream decoders over bytes (reference §2.4, §2.5).

Basic mode (§2.4)::

    host -> pump   <command data ASCII> 0D
    pump -> host   02 <response data ASCII> 03

Safe mode (§2.5), both directions::

    +-----+-----+----------------+--------+--------+-----+
    | STX | LEN | data (n bytes) | CRC hi | CRC lo | ETX |
    |  1  |  1  |       n        |   1    |   1    |  1  |
    +-----+-----+----------------+--------+--------+-----+
    LEN = n + 4 (itself, the two CRC bytes and ETX); CRC = CRC-16/XMODEM over data only.

Telling the two reply framings apart: response data always starts with the pump's address
digit (§2.3), so a byte ``0``-``9`` after STX opens a basic reply, anything else is a safe
length byte. Safe replies of 44-53 data bytes (length ``0x30``-``0x39``) would be ambiguous;
no NE-1000 reply is that long, and such a packet is reported as a bad basic frame, never
accepted. Nor is a safe packet whose length byte a bit error turned into a digit: a "basic
frame" whose last two bytes are the CRC-16 of the bytes between them and the digit is
reported as corrupted (a real basic reply ends that way once in 65,536).

Decoders never raise on bad input: they return :class:`~drivers.errors.FrameError` items and
resynchronise on the next STX, so every byte fed is accounted for -- in a frame, in a
reported error, or still pending.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from drivers.errors import FrameError
from drivers.framing_common import ItemT, StreamDecoder

STX = 0x02
ETX = 0x03
CR = 0x0D
SAFE_OVERHEAD = 4  # length byte, CRC hi, CRC lo, ETX (§2.5)
MAX_BASIC_DATA = 64  # longest reply data accepted in basic mode; real replies are < 25 bytes
MAX_BASIC_COMMAND = 64


def crc16_xmodem(data: bytes) -> int:
    """CRC-16/XMODEM (poly 0x1021, init 0x0000), reference §1; check value 0x31C3."""
    return binascii.crc_hqx(data, 0)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: its data bytes, which framing carried it, and where it started."""

    data: bytes
    safe: bool
    offset: int


class DroppedBytes(FrameError):
    """Bytes outside any frame (line noise, a late reply's tail); skipped and counted."""


class ChecksumError(FrameError):
    """A complete safe-mode packet whose CRC does not match its data."""

    def __init__(self, *, expected: int, got: int, offset: int, data: bytes) -> None:
        self.expected = expected
        self.got = got
        super().__init__(f"invalid checksum: expected 0x{expected:04X}, got 0x{got:04X}", offset=offset, data=data)


def _printable(byte: int) -> bool:
    return 0x20 <= byte <= 0x7E


def _ascii(text: str, what: str) -> bytes:
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} must be ASCII, got {text!r}") from exc
    if not all(_printable(b) for b in raw):
        raise ValueError(f"{what} must be printable ASCII, got {text!r}")
    return raw


def encode_basic(command_data: str) -> bytes:
    """Host -> pump, basic mode: ``<command data> CR`` (§2.4)."""
    return _ascii(command_data, "command data") + bytes([CR])


def encode_safe(data: bytes) -> bytes:
    """A safe-mode packet around ``data`` (§2.5), used in both directions."""
    if len(data) + SAFE_OVERHEAD > 0xFF:
        raise ValueError(f"safe-mode data is at most {0xFF - SAFE_OVERHEAD} bytes, got {len(data)}")
    crc = crc16_xmodem(data)
    return bytes([STX, len(data) + SAFE_OVERHEAD, *data, crc >> 8, crc & 0xFF, ETX])


def encode_basic_reply(response_data: str) -> bytes:
    """Pump -> host, basic mode: ``STX <response data> ETX`` (§2.4)."""
    return bytes([STX]) + _ascii(response_data, "response data") + bytes([ETX])


class _StreamDecoder(StreamDecoder[ItemT]):
    """What both directions share beyond the common bookkeeping: STX resync, safe packets."""

    FLUSH_REASON = "incomplete frame discarded after an idle gap"  # §2.2: inter-byte timeout 0.5 s
    FLUSH_KIND = DroppedBytes

    def _drop_to_next_stx(self, reason: str) -> FrameError:
        nxt = self._buf.find(STX, 1)
        return self._drop(len(self._buf) if nxt < 0 else nxt, reason)

    def _safe_packet(self) -> Frame | FrameError | None:
        """Decode a safe-mode packet at the head of the buffer (STX already checked)."""
        buf = self._buf
        if len(buf) < 2:
            return None
        length = buf[1]
        if length < SAFE_OVERHEAD:
            return self._drop_to_next_stx(f"safe-mode length byte 0x{length:02X} is below {SAFE_OVERHEAD}")
        end = length  # index of the ETX: STX, then `length` bytes ending with it
        data_end = end - 2
        for i in range(2, min(len(buf), data_end)):
            if not _printable(buf[i]):
                return self._drop_to_next_stx(f"byte 0x{buf[i]:02X} at packet position {i} is not ASCII data")
        if len(buf) <= end:
            return None
        if buf[end] != ETX:
            return self._drop_to_next_stx(f"expected ETX at packet position {end}, got 0x{buf[end]:02X}")
        data = bytes(buf[2:data_end])
        got = buf[data_end] << 8 | buf[data_end + 1]
        expected = crc16_xmodem(data)
        offset = self._offset
        if got != expected:
            return ChecksumError(expected=expected, got=got, offset=offset, data=self._consume(end + 1))
        self._consume(end + 1)
        return Frame(data, safe=True, offset=offset)


class ReplyDecoder(_StreamDecoder[Frame]):
    """Host side: pump -> host bytes into frames of either framing."""

    def _next(self) -> Frame | FrameError | None:
        buf = self._buf
        if buf[0] != STX:
            nxt = buf.find(STX)
            return self._drop(len(buf) if nxt < 0 else nxt, "bytes outside a frame", DroppedBytes)
        if len(buf) < 2:
            return None
        if not 0x30 <= buf[1] <= 0x39:
            return self._safe_packet()
        for i in range(1, len(buf)):
            byte = buf[i]
            if byte == ETX:
                offset = self._offset
                frame = self._consume(i + 1)
                if i >= 5 and crc16_xmodem(frame[2:-3]) == frame[-3] << 8 | frame[-2]:
                    return FrameError(
                        f"a safe-mode packet whose length byte reads as a digit (0x{frame[1]:02X}): its last two "
                        "bytes before ETX are the CRC of the rest, so it is corrupted, not a basic reply",
                        offset=offset,
                        data=frame,
                    )
                return Frame(frame[1:-1], safe=False, offset=offset)
            if byte == STX:
                return self._drop(i, "basic frame cut short by a new STX")
            if not _printable(byte):
                return self._drop_to_next_stx(f"byte 0x{byte:02X} at frame position {i} is not ASCII data")
            if i > MAX_BASIC_DATA:
                return self._drop_to_next_stx(f"basic frame longer than {MAX_BASIC_DATA} bytes without ETX")
        return None


@dataclass(frozen=True, slots=True)
class Request:
    """One command as the pump sees it: normalised text and the framing it came in."""

    text: str
    safe: bool
    offset: int


def normalise_command(raw: bytes) -> str:
    """What the pump does to basic-mode input (§2.3): drop spaces and controls, upper-case."""
    return "".join(chr(b) for b in raw if 0x21 <= b <= 0x7E).upper()


class RequestDecoder(_StreamDecoder[Request]):
    """Pump side (simulators): host -> pump bytes into requests of either framing.

    A basic command ends at CR; a safe packet starts with STX, whatever mode the pump is in
    (nesp-lib opens with a safe-mode ``SAF0``, §2.12). Every decision looks only at the
    first ``MAX_BASIC_COMMAND + 1`` bytes at the head of the buffer, and a bad safe packet
    costs only its STX, so what a simulated pump hears never depends on how the bytes were
    chunked on the way (a pty or TCP splits them anywhere).
    """

    def _drop_to_next_stx(self, reason: str) -> FrameError:
        return self._drop(1, reason)  # how far the next STX is would depend on what has arrived

    def _next(self) -> Request | FrameError | None:
        buf = self._buf
        if buf[0] == STX:
            item = self._safe_packet()
            if isinstance(item, Frame):
                return Request(normalise_command(item.data), safe=True, offset=item.offset)
            return item
        window = buf[: MAX_BASIC_COMMAND + 1]
        cr = window.find(CR)
        stx = window.find(STX)
        if stx >= 0 and (cr < 0 or stx < cr):
            return self._drop(stx, "command bytes without CR before a safe-mode packet", DroppedBytes)
        if cr < 0:
            if len(buf) > MAX_BASIC_COMMAND:
                return self._drop(MAX_BASIC_COMMAND + 1, f"command longer than {MAX_BASIC_COMMAND} bytes without CR")
            return None
        offset = self._offset
        raw = self._consume(cr + 1)
        return Request(normalise_command(raw[:-1]), safe=False, offset=offset)
