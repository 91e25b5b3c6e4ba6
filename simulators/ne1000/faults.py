"""Fault injection for the NE-1000 simulator, per pump (design §4: declared per pump)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    """What goes wrong with this pump's replies. Mutable: tests flip faults mid-run.

    ``corrupt_checksum``: safe-mode replies carry a wrong CRC; basic-mode replies (which have
    no checksum) get one data byte replaced by ``0xFF``, so the frame is invalid either way.
    ``garbage_before_reply``: these bytes are sent just before each reply.
    ``silent``: commands are consumed but never answered.
    ``reply_delay_s``: each reply is sent this long after the command arrived.
    """

    corrupt_checksum: bool = False
    garbage_before_reply: bytes = b""
    silent: bool = False
    reply_delay_s: float = 0.0
