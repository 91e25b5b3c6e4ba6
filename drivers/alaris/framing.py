"""Alaris-style framing: pure encoder and stream decoder over bytes (reference §3.3).

Both directions use the same frame::

    +-----+---------------------------------+-----+---------------+----+
    | '!' | body: NAME ['^' field]...       | '|' | CRC: 4 hex    | CR |
    |  1  | n bytes, printable ASCII        |  1  | upper-case, 4 |  1 |
    +-----+---------------------------------+-----+---------------+----+
    CRC = CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over the body only (§1, §3.3).

An ESC (0x1B) anywhere means "premature termination": the partial frame is discarded
(§3.3). The decoder never raises on bad input: it returns :class:`FrameError` items and
resynchronises on the next ``!``, so every byte fed ends up in a frame, in a reported
error, or still pending. Unlike the open clients (§3.3: neither checks the CRC) a bad CRC
is always an error here.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from drivers.errors import FrameError
from drivers.framing_common import StreamDecoder

START = 0x21  # '!'
SEPARATOR = 0x7C  # '|'
FIELD = 0x5E  # '^'
CR = 0x0D
ESC = 0x1B
CRC_CHARS = 4
MAX_BODY = 512  # longest body accepted; the longest reply in the sources is ~70 bytes
_HEX = frozenset(b"0123456789ABCDEF")
_FORBIDDEN_IN_BODY = frozenset({START, SEPARATOR, CR, ESC})


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (init 0xFFFF), reference §1; check value 0x29B1.

    Named by its init value on purpose: NE-1000's "CCITT" CRC is the init-0 variant (§1).
    """
    return binascii.crc_hqx(data, 0xFFFF)


def crc_text(body: bytes) -> bytes:
    return b"%04X" % crc16_ccitt_false(body)


@dataclass(frozen=True, slots=True)
class Frame:
    """One valid frame: its body (without ``!``, ``|CRC`` and CR) and its stream offset."""

    body: bytes
    offset: int


class DroppedBytes(FrameError):
    """Bytes outside any frame (noise, a stray CR, the tail of a late reply)."""


class AbortedFrame(FrameError):
    """A partial frame discarded because ESC arrived (§3.3) or a new ``!`` started."""


class ChecksumError(FrameError):
    """A complete frame whose CRC does not match its body."""

    def __init__(self, *, expected: int, got: int, offset: int, data: bytes) -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            f"invalid CRC-16/CCITT-FALSE: expected {expected:04X}, got {got:04X}", offset=offset, data=data
        )


def check_body(body: bytes) -> bytes:
    """Refuse a body that could break framing: control bytes, ``!``, ``|``."""
    for index, byte in enumerate(body):
        if byte in _FORBIDDEN_IN_BODY or not 0x20 <= byte <= 0x7E:
            raise ValueError(f"frame body byte 0x{byte:02X} at position {index} is not allowed in {body!r}")
    if not body:
        raise ValueError("frame body must not be empty")
    return body


def encode_body(name: str, *fields: str) -> bytes:
    """``NAME^f1^f2`` as ASCII; field 0 is the command name (§3.3)."""
    try:
        raw = "^".join((name, *fields)).encode("ascii")
    except UnicodeEncodeError as exc:
        raise ValueError(f"frame body must be ASCII, got {name!r} {fields!r}") from exc
    if not name or b"^" in name.encode("ascii"):
        raise ValueError(f"command name must be non-empty and without '^', got {name!r}")
    return check_body(raw)


def encode_frame(body: bytes) -> bytes:
    """``! body | CRC CR`` (§3.3)."""
    check_body(body)
    return b"!" + body + b"|" + crc_text(body) + b"\r"


def split_fields(body: bytes) -> list[str]:
    """Body -> fields (field 0 the echoed name); the ``|CRC`` is already gone (§3.5)."""
    return body.decode("ascii").split("^")


class FrameDecoder(StreamDecoder[Frame]):
    """Stream of bytes (either direction) -> :class:`Frame` or :class:`FrameError` items."""

    FLUSH_KIND = AbortedFrame

    def _next(self) -> Frame | FrameError | None:
        buf = self._buf
        if buf[0] != START:
            nxt = buf.find(START)
            return self._drop(len(buf) if nxt < 0 else nxt, "bytes outside a frame", DroppedBytes)
        for i in range(1, len(buf)):
            byte = buf[i]
            if byte == CR:
                return self._complete(i)
            if byte == ESC:
                return self._drop(i + 1, "partial frame terminated by ESC", AbortedFrame)
            if byte == START:
                return self._drop(i, "frame cut short by a new '!'", AbortedFrame)
            if not 0x20 <= byte <= 0x7E:
                return self._drop(i + 1, f"byte 0x{byte:02X} at frame position {i} is not ASCII text", FrameError)
            if i > MAX_BODY + CRC_CHARS + 1:
                return self._drop(i, f"no CR within {MAX_BODY + CRC_CHARS + 2} bytes", FrameError)
        return None

    def _complete(self, cr_at: int) -> Frame | FrameError:
        raw = bytes(self._buf[: cr_at + 1])
        bar = raw.rfind(b"|")
        if bar < 0:
            return self._drop(cr_at + 1, "frame without '|' before the CRC", FrameError)
        body, crc = raw[1:bar], raw[bar + 1 : -1]
        if len(crc) != CRC_CHARS or not set(crc) <= _HEX:
            return self._drop(cr_at + 1, f"expected 4 upper-case hex CRC characters after '|', got {crc!r}", FrameError)
        if not body or b"|" in body:
            return self._drop(cr_at + 1, "empty body or a second '|' in the frame", FrameError)
        expected, got = crc16_ccitt_false(body), int(crc, 16)
        offset = self._offset
        self._consume(cr_at + 1)
        if expected != got:
            return ChecksumError(expected=expected, got=got, offset=offset, data=raw)
        return Frame(body, offset)
