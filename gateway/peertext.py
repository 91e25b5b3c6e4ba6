"""Peer free text made safe for logs and storage (design.md §2 inv. 7 and 8).

Whatever a peer sends us as text -- an ACK's MSA-3 or ERR user message, a non-ACK reply, an
MQTT payload, a string a pump reports -- may carry patient identifiers (receivers echo
``PID|||MRN...``; alarm texts name patients) and may be of any size (a hostile receiver
answers with a 15 MiB AE). Two rules follow, and this module is their one implementation:

* **logs above DEBUG get a summary, never the text**: what kind of thing arrived, its
  length, and tokens from a closed vocabulary (message type, ACK code, HL7 error codes);
* **stored text is bounded** to :data:`MAX_STORED_CHARS` characters (UTF-8 safe), with a
  marker saying how much was cut, so one reply cannot grow the outbox past its byte budget.

The full text goes only to the ``pumpgw.wire.*`` loggers at the WIRE level, which exist
only with ``logging.level = "debug"`` and ``logging.wire_trace = true`` (docs/operations.md).

Pure functions; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_STORED_CHARS = 1024  # 1 KiB of a receiver's text is enough to diagnose; the rest is cut
_TOKEN = re.compile(r"[A-Za-z0-9_^.\-]{1,24}")
_SEGMENT = re.compile(rb"(?:^|[\r\n])([A-Z][A-Z0-9]{2})\|")


def bound_text(text: str, limit: int = MAX_STORED_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters (marker included) when longer."""
    if len(text) <= limit:
        return text
    marker = f" [... {len(text) - limit} more chars cut]"
    keep = max(0, limit - len(marker))
    return text[:keep] + marker[: limit - keep]


def token(value: str, *, default: str = "?") -> str:
    """A short identifier-like token (a code, a message type) or ``default`` if it is not one.

    Used for fields that are codes by specification (MSA-1, MSH-9, ERR-3 identifiers): a peer
    that puts free text there gets ``?`` in the log, not its text.
    """
    value = value.strip()
    return value if _TOKEN.fullmatch(value) else default


def summarise_text(text: str | bytes, what: str = "text") -> str:
    """``"<what>: 123 chars"`` -- only the size of a free text, never its content."""
    unit = "bytes" if isinstance(text, bytes) else "chars"
    return f"{what}: {len(text)} {unit}"


def err_codes(segments: Iterable[str], sep: str = "|") -> list[str]:
    """HL7 error codes (ERR-3 identifier, or ERR-1's 4th component in v2.3 style) as tokens."""
    codes: list[str] = []
    for seg in segments:
        fields = seg.split(sep)
        code = ""
        if len(fields) > 3 and fields[3]:
            code = fields[3].split("^")[0]
        elif len(fields) > 1 and fields[1]:
            parts = fields[1].split("^")
            code = parts[3] if len(parts) > 3 else ""
        if code:
            codes.append(token(code))
    return codes[:8]


def summarise_reply(data: bytes) -> str:
    """A non-ACK (or unparsable) reply described by its shape: size, segment names, MSH-9.

    Segment names are three capitals by HL7 syntax; which ones arrived (``MSH,PID``) tells an
    integration engineer what the peer sent without showing any field of it.
    """
    names = [m.decode() for m in _SEGMENT.findall(data[:65536])]
    shown = ",".join(names[:12]) + (",..." if len(names) > 12 else "")
    msg_type = "?"
    if data.startswith(b"MSH") and len(data) > 4:
        fields = data.split(b"\r", 1)[0].split(data[3:4])
        if len(fields) > 8:
            msg_type = token(fields[8].decode("ascii", "replace"))
    return f"{len(data)} bytes, segments [{shown or 'none'}], MSH-9 {msg_type}"
