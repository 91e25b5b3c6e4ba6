"""ER7 (pipe-and-hat) primitives of the send side: escaping, timestamps, numbers.

The receive side (``unescape``) is common/pcd/er7.py, beside the tolerant parser.

Plain string work on purpose: the encoders run once per pump per poll interval and per
event, and hl7apy costs ~1,400x plain assembly per message (issue 5 item 5). Encoding
characters are fixed to the HL7 defaults (MSH-1 ``|``, MSH-2 ``^~\\&``), which is what the
TF prescribes (TF2-R10 B.1 MSH-1/2).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

from gateway.hl7.errors import Hl7EncodeError

FIELD_SEP = "|"
ENCODING_CHARS = "^~\\&"
SEGMENT_SEP = "\r"

# HL7 v2.6 §2.7: escape sequences for the delimiters; control characters as \Xhh\ so that
# a CR or LF inside a drug name can never split a segment.
_ESCAPES: dict[int, str] = {
    ord("\\"): "\\E\\",
    ord("|"): "\\F\\",
    ord("^"): "\\S\\",
    ord("~"): "\\R\\",
    ord("&"): "\\T\\",
    **{c: f"\\X{c:02X}\\" for c in range(0x20) if c != 0x09},
    0x7F: "\\X7F\\",
}
_NEEDS_ESCAPE = re.compile(r"[\\|^~&\x00-\x08\x0a-\x1f\x7f]")


@lru_cache(maxsize=4096)
def escape(text: str) -> str:
    """Escape free text for one ER7 component; leading/trailing blanks are dropped.

    Blanks at the edges carry no meaning on a pump display and receivers trim them
    (ihe-pcd.md §2.2), so sending them would only make the round trip lossy elsewhere.
    Cached: drug names, labels and care areas repeat in every poll of every pump.
    """
    text = text.strip()
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return text.translate(_ESCAPES)


def dtm(moment: datetime, *, what: str) -> str:
    """HL7 DTM in UTC with ``+0000`` (TF2-R10 B.8.7: observation times SHOULD be UTC).

    Sub-second precision is kept to 4 digits (the DTM maximum); a naive datetime is refused
    because its offset would be a guess (design.md §2 invariant 5).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise Hl7EncodeError(f"{what}: timestamp {moment.isoformat()} has no UTC offset", field=what)
    cached = _last_dtm.get(moment)  # a message writes the same moment 2-3 times (MSH-7, OBR-7, OBX)
    if cached is not None:
        return cached
    try:
        utc = moment.astimezone(UTC)
    except OverflowError as exc:
        raise Hl7EncodeError(f"{what}: timestamp {moment.isoformat()} is out of range", field=what) from exc
    text = _digits(utc)
    if utc.microsecond:
        text += f".{utc.microsecond // 100:04d}"
    text += "+0000"
    if len(_last_dtm) >= 64:
        _last_dtm.clear()
    _last_dtm[moment] = text
    return text


_last_dtm: dict[datetime, str] = {}  # the few latest moments formatted (bounded, cleared when full)


def _digits(m: datetime) -> str:
    # Not strftime: it writes years before 1000 with fewer than 4 digits on some platforms.
    return f"{m.year:04d}{m.month:02d}{m.day:02d}{m.hour:02d}{m.minute:02d}{m.second:02d}"


def device_dtm(moment: datetime) -> str:
    """The device's own notion of time (MDC_ATTR_TIME_ABS): as the pump reported it.

    A pump clock without a zone is sent without an offset; correcting it is what the
    receiver does with this very row (TF2-R10 B.8.8).
    """
    if moment.tzinfo is None:
        return _digits(moment)
    return dtm(moment, what="MDC_ATTR_TIME_ABS")


def number(value: Decimal, *, what: str) -> str:
    """An NM value with the device's precision (trailing zeros kept, never exponent form)."""
    text = str(value)  # fast path: plain notation for everyday magnitudes
    if "E" in text or not text[-1].isdigit():
        if not value.is_finite():
            raise Hl7EncodeError(f"{what}: {value} is not a finite number", field=what)
        text = format(value, "f")
    if text[0] == "-" and value.is_zero():
        text = text[1:]
    return text
