"""Per-pump fault injection shared by every simulator front-end (design §4).

One :class:`Faults` object per simulated pump; tests and scenario scripts mutate it while
the simulator runs. The reply-path faults are applied by each front-end to its own framing
(a "bad checksum" is a wrong CRC on an Alaris frame, a wrong sum on a BCC frame, an invalid
byte in an NE-1000 basic frame). The link-level faults -- disconnect/reconnect, identity
swap, firmware change, clock jump -- are actions on the server or the pump model, run by
:mod:`simulators.scenario`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

FAULT_FIELDS = ("corrupt_checksum", "garbage_before_reply", "silent", "reply_delay_s")


@dataclass
class Faults:
    """What goes wrong with this pump's replies. Mutable: tests flip faults mid-run.

    ``corrupt_checksum``: replies carry a wrong checksum/CRC (or, where the framing has
    none, an invalid byte), so the frame is invalid.
    ``garbage_before_reply``: these bytes are sent just before each reply.
    ``silent``: requests are consumed but never answered.
    ``reply_delay_s``: each reply is sent this long after the request arrived.
    """

    corrupt_checksum: bool = False
    garbage_before_reply: bytes = b""
    silent: bool = False
    reply_delay_s: float = 0.0

    def clear(self) -> None:
        self.corrupt_checksum = False
        self.garbage_before_reply = b""
        self.silent = False
        self.reply_delay_s = 0.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Bytes for the host and how long after the triggering request to send them."""

    data: bytes
    delay_s: float = 0.0


def faulty_reply(faults: Faults, wire: bytes, corrupt: Callable[[bytes], bytes]) -> list[Outgoing]:
    """``wire`` as the faults say it goes out: nothing, damaged, late, after garbage."""
    if faults.silent:
        return []
    if faults.corrupt_checksum:
        wire = corrupt(wire)
    return [Outgoing(faults.garbage_before_reply + wire, faults.reply_delay_s)]
