"""Errors of MLLP framing: what the decoder reports about bytes that are not a clean frame.

Decoder problems are *values* (returned by :meth:`MllpDecoder.feed`), not raised: a
receiver keeps reading after garbage, and the caller decides what a bad frame means (the
gateway's sender treats it as "no ACK"; the EHR simulator logs it).
"""

from __future__ import annotations

from common.errors import BadInput


class MllpError(BadInput):
    """Base of every MLLP problem; ``offset`` is the byte offset in the stream."""

    def __init__(self, message: str, *, offset: int) -> None:
        self.offset = offset
        super().__init__(message)


class MllpGarbage(MllpError):
    """Bytes outside any frame (between frames or before the first start block)."""

    def __init__(self, *, byte_count: int, offset: int, sample: bytes) -> None:
        self.byte_count = byte_count
        self.sample = sample
        super().__init__(
            f"{byte_count} byte(s) outside an MLLP frame at offset {offset} "
            f"(expected start block 0x0B, got {sample[:16]!r})",
            offset=offset,
        )


class MllpFrameTooLarge(MllpError):
    """A frame grew beyond ``max_frame_bytes``; it is discarded up to its end block."""

    def __init__(self, *, limit: int, offset: int) -> None:
        self.limit = limit
        super().__init__(
            f"MLLP frame starting at offset {offset} exceeds {limit} bytes; discarded up to its end block",
            offset=offset,
        )


class MllpMalformedFrame(MllpError):
    """A frame that did not end in ``0x1C 0x0D``: a new start block inside it, or an end
    block followed by something other than carriage return. Its bytes are dropped."""

    def __init__(self, reason: str, *, dropped: int, offset: int) -> None:
        self.reason = reason
        self.dropped = dropped
        super().__init__(f"malformed MLLP frame at offset {offset}: {reason}; {dropped} byte(s) dropped", offset=offset)
