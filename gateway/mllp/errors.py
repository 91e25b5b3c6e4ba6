"""Errors of the MLLP sender: ACKs, delivery, TLS material.

The framing errors (``MllpError`` and its kinds) belong to the framing codec in
:mod:`common.mllp`, which the simulators share without importing the daemon.
"""

from __future__ import annotations

from gateway.errors import BadInput, RetryLater


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
