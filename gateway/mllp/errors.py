"""Errors of the MLLP layer.

Decoder problems are *values* (returned by :meth:`MllpDecoder.feed`), not raised: a
receiver keeps reading after garbage, and the caller decides what a bad frame means (the
sender treats it as "no ACK"). ACK parsing and link failures raise.
"""

from __future__ import annotations

from gateway.errors import BadInput, RetryLater


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


class AckError(BadInput):
    """Bytes that are not an HL7 acknowledgement (no MSH/MSA, unknown MSA-1 code)."""

    def __init__(self, reason: str, data: bytes) -> None:
        self.reason = reason
        self.data = data
        # Never the bytes themselves in the message: they are peer text (patient data).
        super().__init__(f"not an HL7 ACK: {reason} ({len(data)} bytes)")


class DeliveryError(RetryLater):
    """A delivery attempt failed without a usable ACK (timeout, connection loss, wrong
    MSA-2, garbage). The sender reconnects with backoff and resends the same bytes."""


class TlsConfigError(BadInput):
    """TLS material cannot be loaded; the sender refuses to connect (never plaintext)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"TLS file {path}: {reason}")
