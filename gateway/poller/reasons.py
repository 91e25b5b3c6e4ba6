"""One line saying what went wrong on a link, for logs, alerts and the status page."""

from __future__ import annotations

from drivers.errors import FrameError, LinkError, PumpRefused, ReplyTimeout


def reason(exc: BaseException) -> str:
    """What went wrong, without the pump and link (they are fields of the log line already)
    and without Python reprs of raw bytes (those are for the WIRE trace, and may carry
    patient data)."""
    if isinstance(exc, LinkError):
        return exc.reason
    if isinstance(exc, ReplyTimeout):
        return f"no reply to {exc.command} within {exc.timeout_s:g} s"
    if isinstance(exc, FrameError):
        return f"{exc.reason} at byte offset {exc.offset}"
    if isinstance(exc, PumpRefused):
        return f"refused {exc.command}: {exc.code} ({exc.meaning})"
    return str(exc) or type(exc).__name__
