"""BCC-style framing: pure encoder and stream decoder over bytes (reference §6.3).

One frame, before optional character stuffing::

    +-----+--------+-----+----------------------+-----------+---------+----------+-----+
    | SOH | length | STX | bed ID "/1/1>"       | user data | ETX/ETB | checksum | EOT |
    |  1  | 5 dig. |  1  | 1-15 chars + 5       |     n     |    1    | 5 digits |  1  |
    +-----+--------+-----+----------------------+-----------+---------+----------+-----+
    length   = bytes of the whole unstuffed frame, SOH..EOT inclusive, zero-padded decimal
    checksum = sum of the unstuffed bytes SOH..ETX/ETB, mod 256, zero-padded decimal

ETB ends every frame of a multi-frame response but the last, which ends with ETX [D7].
Stuffing (optional, §6.3) maps ``d``->``ex``, ``D``->``EX``, ``e``->``ee``, ``E``->``EE`` over
the whole built frame; length and checksum refer to the unstuffed frame.

Link acknowledgement: a bare ACK (0x06) or NAK (0x15) between frames. The decoder reports
them as :class:`LinkControl` items; any other byte outside a frame is counted noise. It
never raises on bad input: every byte ends up in a frame, a reported error, or pending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.errors import FrameError
from drivers.framing_common import StreamDecoder

SOH, STX, ETX, EOT, ACK, ETB, NAK = 0x01, 0x02, 0x03, 0x04, 0x06, 0x17, 0x15
HEADER_TAIL = b"/1/1>"
MAX_FRAME = 99999  # a 5-digit length field
_BED_ID = re.compile(rb"[\x2f-\x39\x41-\x7a]{1,15}")
_STUFF = {ord("d"): b"ex", ord("D"): b"EX", ord("e"): b"ee", ord("E"): b"EE"}
_UNSTUFF = {ord("x"): ord("d"), ord("e"): ord("e"), ord("X"): ord("D"), ord("E"): ord("E")}
_OVERHEAD = 1 + 5 + 1 + 1 + 5 + 1  # SOH, length, STX, ETX, checksum, EOT


def checksum(frame_through_end: bytes) -> int:
    """§1/§6.3: sum of the unstuffed bytes SOH..ETX (or ETB), mod 256."""
    return sum(frame_through_end) % 256


def stuff(frame: bytes) -> bytes:
    return b"".join(_STUFF.get(b, bytes([b])) for b in frame)


def check_bed_id(bed_id: str) -> bytes:
    raw = bed_id.encode("latin-1")
    if not _BED_ID.fullmatch(raw):
        raise ValueError(f"bed ID must be 1-15 characters from 0x2F-0x39 and 0x41-0x7A, got {bed_id!r}")
    return raw


def encode_frame(bed_id: str, user_data: bytes, *, final: bool = True, stuffing: bool = False) -> bytes:
    """One frame around ``user_data``; ``final=False`` ends it with ETB (more follow)."""
    if any(b in (SOH, STX, ETX, EOT, ETB) for b in user_data):
        raise ValueError(f"user data must not contain frame control bytes, got {user_data[:40]!r}")
    body = bytes([STX]) + check_bed_id(bed_id) + HEADER_TAIL + user_data + bytes([ETX if final else ETB])
    length = 1 + 5 + len(body) + 5 + 1
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes exceeds the 5-digit length field")
    head = bytes([SOH]) + b"%05d" % length + body
    frame = head + b"%05d" % checksum(head) + bytes([EOT])
    return stuff(frame) if stuffing else frame


@dataclass(frozen=True, slots=True)
class Frame:
    bed_id: str
    data: bytes
    final: bool  # ended with ETX (the last frame of a response), not ETB
    offset: int


@dataclass(frozen=True, slots=True)
class LinkControl:
    """A bare ACK or NAK between frames (§6.3)."""

    byte: int
    offset: int

    @property
    def ack(self) -> bool:
        return self.byte == ACK


class DroppedBytes(FrameError):
    """Bytes outside any frame (noise), or a partial frame cut by a new SOH."""


class LengthError(FrameError):
    """The length field does not match the frame's actual (unstuffed) length."""


class ChecksumError(FrameError):
    def __init__(self, *, expected: int, got: int, offset: int, data: bytes) -> None:
        self.expected = expected
        self.got = got
        super().__init__(f"invalid checksum: expected {expected:05d}, got {got:05d}", offset=offset, data=data)


class FrameDecoder(StreamDecoder[Frame | LinkControl]):
    """Bytes from either side -> :class:`Frame`, :class:`LinkControl` or :class:`FrameError`."""

    FLUSH_KIND = DroppedBytes

    def __init__(self, *, stuffing: bool = False) -> None:
        super().__init__()
        self.stuffing = stuffing

    def _next(self) -> Frame | LinkControl | FrameError | None:
        buf = self._buf
        if buf[0] in (ACK, NAK):
            offset = self._offset
            return LinkControl(self._consume(1)[0], offset)
        if buf[0] != SOH:
            stop = next((i for i, b in enumerate(buf) if b in (SOH, ACK, NAK)), len(buf))
            return self._drop(stop, "bytes outside a frame", DroppedBytes)
        for i in range(1, len(buf)):
            if buf[i] == EOT:
                return self._complete(i + 1)
            if buf[i] == SOH:
                return self._drop(i, "frame cut short by a new SOH", DroppedBytes)
            if i >= 2 * MAX_FRAME:
                return self._drop(i, f"no EOT within {2 * MAX_FRAME} bytes")
        return None

    def _complete(self, end: int) -> Frame | FrameError:
        offset = self._offset
        wire = self._consume(end)
        raw = self._unstuff(wire) if self.stuffing else wire
        if isinstance(raw, FrameError):
            return raw
        if len(raw) < _OVERHEAD + len(HEADER_TAIL) + 1 or not raw[1:6].isdigit():
            return FrameError("frame too short or length field not 5 digits", offset=offset, data=wire)
        if int(raw[1:6]) != len(raw):
            return LengthError(
                f"length field says {int(raw[1:6])} bytes, frame has {len(raw)}", offset=offset, data=wire
            )
        if raw[6] != STX:
            return FrameError(f"expected STX after the length field, got 0x{raw[6]:02X}", offset=offset, data=wire)
        end_byte = raw[-7]
        if end_byte not in (ETX, ETB):
            return FrameError(
                f"expected ETX or ETB before the checksum, got 0x{end_byte:02X}", offset=offset, data=wire
            )
        digits = raw[-6:-1]
        if not digits.isdigit():
            return FrameError(f"checksum field is not 5 digits: {digits!r}", offset=offset, data=wire)
        expected, got = checksum(raw[:-6]), int(digits)
        if expected != got:
            return ChecksumError(expected=expected, got=got, offset=offset, data=wire)
        content = raw[7:-7]
        tail = content.find(HEADER_TAIL)
        bed = content[:tail] if tail >= 0 else b""
        if not _BED_ID.fullmatch(bed):
            return FrameError("expected <bed ID>/1/1> after STX", offset=offset + 7, data=wire)
        return Frame(bed.decode("latin-1"), content[tail + len(HEADER_TAIL) :], end_byte == ETX, offset)

    def _unstuff(self, wire: bytes) -> bytes | FrameError:
        out = bytearray()
        i = 0
        while i < len(wire):
            byte = wire[i]
            if byte in (0x65, 0x45):  # 'e', 'E'
                nxt = wire[i + 1] if i + 1 < len(wire) else None
                if nxt not in _UNSTUFF or (byte == 0x65) != (nxt in (0x78, 0x65)):
                    return FrameError(
                        f"invalid stuffing sequence at frame position {i}",
                        offset=self._offset - len(wire) + i,
                        data=wire,
                    )
                out.append(_UNSTUFF[nxt])
                i += 2
                continue
            if byte in (0x64, 0x44):  # a bare 'd'/'D' cannot occur in a stuffed frame
                return FrameError(
                    f"unstuffed {chr(byte)!r} at frame position {i}", offset=self._offset - len(wire) + i, data=wire
                )
            out.append(byte)
            i += 1
        return bytes(out)
