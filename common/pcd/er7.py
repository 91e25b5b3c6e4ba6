"""ER7 escape sequences on the receive side (HL7 v2.6 §2.7): what a reader needs to unescape.

The send side (``escape``, timestamps, numbers) is the encoders' and stays in gateway/hl7/er7.py;
both follow the same table of §2.7 (``\\E\\ \\F\\ \\S\\ \\R\\ \\T\\``, ``\\Xhh\\``, ``\\.br\\``).
"""

from __future__ import annotations

import re

_UNESCAPES = {"E": "\\", "F": "|", "S": "^", "R": "~", "T": "&"}
_ESCAPE_SEQ = re.compile(r"\\([EFSRT]|X[0-9A-Fa-f]+|\.br)\\")


def unescape(text: str) -> str:
    """Inverse of gateway.hl7.er7.escape; unknown sequences are kept verbatim."""
    if "\\" not in text:
        return text
    return _ESCAPE_SEQ.sub(_one, text)


def _one(match: re.Match[str]) -> str:
    seq = match.group(1)
    if seq in _UNESCAPES:
        return _UNESCAPES[seq]
    if seq == ".br":
        return "\n"
    hexdigits = seq[1:]
    if len(hexdigits) % 2:
        return match.group(0)
    return bytes.fromhex(hexdigits).decode("latin-1")
