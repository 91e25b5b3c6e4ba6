"""Driver exceptions: one base, each concrete class in the family that says what the caller does next.

``drivers`` never imports ``gateway`` (design §4), so :class:`DriverError` derives from the
shared roots in :mod:`common.errors` (``PumpgwError``, ``RetryLater``, ``BadInput``), which
``gateway.errors`` re-exports: one hierarchy, no import of the daemon. The poller catches
:class:`DriverError` and its subclasses at its boundary; nothing above it sees them.

* :class:`LinkError` / :class:`LinkClosed` (RetryLater) -- the link is gone or unusable: reconnect later.
* :class:`ReplyTimeout` (RetryLater) -- the pump stayed silent: count silence for this pump, poll again.
* :class:`PumpRefused` (RetryLater) -- the pump answered "no" (a typed reply, the link is fine): poll again.
* :class:`FrameError` (BadInput) -- bytes arrived but were not a valid frame or reply: log it, poll again.
* :class:`UnknownProtocol` (BadInput) -- a configuration names a protocol no driver speaks.
* :class:`ForbiddenCommand` (stop) -- a programming error: a command outside the read-only allowlist.
"""

from __future__ import annotations

from common.errors import BadInput, PumpgwError, RetryLater


class DriverError(PumpgwError):
    """Base of every error raised on purpose by ``drivers``."""


class LinkError(DriverError, RetryLater):
    """The byte transport failed (open, configure, read or write)."""

    def __init__(self, link: str, reason: str) -> None:
        self.link = link
        self.reason = reason
        super().__init__(f"link {link}: {reason}")


class LinkClosed(LinkError):
    """The link was closed (by us, by the peer, or the device went away)."""

    def __init__(self, link: str, reason: str = "closed") -> None:
        super().__init__(link, reason)


class ReplyTimeout(DriverError, RetryLater):
    """No complete reply arrived within the request timeout."""

    def __init__(self, pump_id: str, link: str, command: str, timeout_s: float) -> None:
        self.pump_id = pump_id
        self.link = link
        self.command = command
        self.timeout_s = timeout_s
        super().__init__(f"pump {pump_id} on {link}: no reply to {command!r} within {timeout_s:g} s")


class FrameError(DriverError, BadInput):
    """Bytes that are not a valid frame, or a frame whose content does not parse.

    ``offset`` counts bytes from the start of the decoder's stream (for stream errors) or
    of the frame's data (for reply-content errors); ``data`` holds the offending bytes.
    """

    def __init__(self, reason: str, *, offset: int, data: bytes = b"", pump_id: str = "", link: str = "") -> None:
        self.reason = reason
        self.offset = offset
        self.data = bytes(data)
        self.pump_id = pump_id
        self.link = link
        where = f"pump {pump_id} on {link}: " if pump_id or link else ""
        super().__init__(f"{where}{reason} at byte offset {offset} ({byte_shape(self.data)})")

    def located(self, *, pump_id: str, link: str) -> FrameError:
        """The same error (same subclass and attributes), naming the pump and port."""
        located = type(self).__new__(type(self))
        located.__dict__.update(self.__dict__)
        located.pump_id, located.link = pump_id, link
        located.args = (
            f"pump {pump_id} on {link}: {self.reason} at byte offset {self.offset} ({byte_shape(self.data)})",
        )
        return located


class PumpRefused(DriverError, RetryLater):
    """The pump answered with a typed "no" (NE-1000 ``?``, ``?NA``, ``?OOR`` ...)."""

    def __init__(self, pump_id: str, command: str, code: str, meaning: str) -> None:
        self.pump_id = pump_id
        self.command = command
        self.code = code
        self.meaning = meaning
        super().__init__(f"pump {pump_id} refused {command!r}: {code} ({meaning})")


class SafeModeActive(PumpRefused):
    """The pump answers in NE-1000 safe-mode framing (reference §2.6).

    Polling such a pump would arm its communications watchdog, so the driver stops and
    reports it as a configuration finding instead of polling on.
    """

    def __init__(self, pump_id: str, command: str) -> None:
        super().__init__(
            pump_id,
            command,
            "SAFE",
            "pump is in safe mode; polling it would arm its watchdog (reference §2.6)",
        )


class ForbiddenCommand(DriverError):
    """A command outside the driver's read-only allowlist (design §2 invariant 1)."""

    def __init__(self, protocol: str, command: str) -> None:
        self.protocol = protocol
        self.command = command
        super().__init__(f"{protocol}: command {command!r} is not on the read-only allowlist")


class UnknownProtocol(DriverError, BadInput):
    """No driver is registered under this protocol name."""

    def __init__(self, protocol: str, known: list[str]) -> None:
        self.protocol = protocol
        self.known = known
        super().__init__(f"unknown pump protocol {protocol!r}; expected one of {', '.join(known)}")


def byte_shape(data: bytes) -> str:
    """Length and the first 4 bytes in hex: enough to see a start byte or command code, too
    little to carry a patient name a pump reports (design.md §2 inv. 7). The full bytes are on
    the ``pumpgw.wire.*`` loggers (``logging.wire_trace``)."""
    return f"{len(data)} byte(s): {data[:4].hex(' ')}" + (" ..." if len(data) > 4 else "")
