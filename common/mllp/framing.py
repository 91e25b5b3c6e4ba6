"""MLLP framing (HL7 MLLP release 1; reference/ihe-pcd.md §10.1), sans-I/O.

A block on the wire::

    +------+-------------------------+------+------+
    | 0x0B | HL7 message (CR-joined)  | 0x1C | 0x0D |
    |  SB  |  any length             |  EB  |  CR  |
    +------+-------------------------+------+------+

``frame`` builds one; :class:`MllpDecoder` turns any split or merge of reads back into
payloads. Bytes outside a frame and broken frames are reported as error *values* with
their byte counts and stream offsets, never silently dropped, and the decoder
resynchronises on the next start block (as zigpy-znp does for its UART frames).
"""

from __future__ import annotations

from common.mllp.errors import MllpError, MllpFrameTooLarge, MllpGarbage, MllpMalformedFrame

SB = 0x0B
EB = 0x1C
CR = 0x0D
_SB = b"\x0b"
_EB = b"\x1c"
DEFAULT_MAX_FRAME_BYTES = 16 << 20  # a PCD-01 of a full pump rack stays far below this


def frame(payload: bytes) -> bytes:
    """Wrap one HL7 message in an MLLP block."""
    return b"\x0b" + payload + b"\x1c\x0d"


class MllpDecoder:
    """Incremental MLLP block extractor; feed it whatever ``read()`` returned."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 1:
            raise ValueError(f"max_frame_bytes must be >= 1, got {max_frame_bytes}")
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._in_frame = False
        self._oversized = False  # discarding the rest of a too-large frame
        self._frame_len = 0
        self._frame_offset = 0
        self._after_eb = False  # the previous byte was EB inside a frame
        self._offset = 0  # stream offset of the first byte of the next feed()
        self._garbage = 0
        self._garbage_offset = 0
        self._garbage_sample = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished frame held (0 between frames)."""
        return self._frame_len if self._in_frame else 0

    def feed(self, data: bytes) -> list[bytes | MllpError]:
        out: list[bytes | MllpError] = []
        i, n, base = 0, len(data), self._offset
        while i < n:
            if not self._in_frame:
                j = data.find(_SB, i)
                end = n if j < 0 else j
                if end > i:
                    self._note_garbage(data, i, end, base)
                if j < 0:
                    break
                self._flush_garbage(out)
                self._start_frame(base + j)
                i = j + 1
                continue
            if self._after_eb:
                self._after_eb = False
                if data[i] == CR:
                    self._end_frame(out)
                    i += 1
                else:  # re-scan this byte as outside any frame
                    out.append(
                        MllpMalformedFrame(
                            f"end block 0x1C followed by 0x{data[i]:02X} instead of 0x0D at offset {base + i}",
                            dropped=self._frame_len + 2,
                            offset=self._frame_offset,
                        )
                    )
                    self._in_frame = False
                continue
            j = data.find(_EB, i)
            stop = n if j < 0 else j
            k = data.find(_SB, i, stop)
            if k >= 0:
                out.append(
                    MllpMalformedFrame(
                        f"start block 0x0B at offset {base + k} before the end of the frame",
                        dropped=self._frame_len + (k - i) + 1,
                        offset=self._frame_offset,
                    )
                )
                self._start_frame(base + k)
                i = k + 1
                continue
            self._append(data, i, stop, out)
            if j < 0:
                break
            self._after_eb = True
            i = j + 1
        self._offset = base + n
        self._flush_garbage(out)
        return out

    def _start_frame(self, offset: int) -> None:
        self._in_frame = True
        self._oversized = False
        self._after_eb = False
        self._frame_len = 0
        self._frame_offset = offset
        self._buf.clear()

    def _append(self, data: bytes, start: int, stop: int, out: list) -> None:
        self._frame_len += stop - start
        if self._oversized:
            return
        if self._frame_len > self.max_frame_bytes:
            self._oversized = True
            self._buf.clear()
            out.append(MllpFrameTooLarge(limit=self.max_frame_bytes, offset=self._frame_offset))
            return
        self._buf += data[start:stop]

    def _end_frame(self, out: list) -> None:
        self._in_frame = False
        if not self._oversized:
            out.append(bytes(self._buf))
        self._buf.clear()

    def _note_garbage(self, data: bytes, start: int, stop: int, base: int) -> None:
        if self._garbage == 0:
            self._garbage_offset = base + start
        self._garbage += stop - start
        if len(self._garbage_sample) < 32:
            self._garbage_sample += data[start : min(stop, start + 32)]

    def _flush_garbage(self, out: list) -> None:
        if self._garbage:
            out.append(
                MllpGarbage(byte_count=self._garbage, offset=self._garbage_offset, sample=bytes(self._garbage_sample))
            )
            self._garbage = 0
            self._garbage_sample.clear()
