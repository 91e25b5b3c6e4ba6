"""Errors of the HL7 layer, under the one pumpgw base class."""

from __future__ import annotations

from gateway.errors import BadInput, PumpgwError


class Hl7Error(PumpgwError):
    """Base of every error raised by ``gateway.hl7``."""


class Hl7EncodeError(Hl7Error, BadInput):
    """The input cannot be expressed as a valid PCD message (a naive timestamp, NaN...).

    The router logs it with the pump id and keeps the event on MQTT; it never retries the
    same input, which would fail the same way.
    """

    def __init__(self, message: str, *, field: str, pump_id: str | None = None) -> None:
        self.field = field
        self.pump_id = pump_id
        super().__init__(f"pump {pump_id}: {message}" if pump_id else message)


class UnpublishedCodeError(Hl7Error, BadInput):
    """An event needs an MDC code that is not published (ihe-pcd.md §13) and the
    configuration says to leave such events unsent (``unpublished_codes = "omit"``)."""

    def __init__(self, refid: str, pump_id: str) -> None:
        self.refid = refid
        self.pump_id = pump_id
        super().__init__(f"pump {pump_id}: {refid} has no published MDC code and unpublished_codes is 'omit'")


class ControlIdStateError(Hl7Error):
    """The MSH-10 high-water-mark file cannot be read or written."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: MSH-10 state file unusable: {reason}")
