"""Strict numbers at the driver boundary: one routine every protocol codec parses with.

Why one routine: a pump (or whatever sits on its wire) can send anything. ``Decimal(text)``
accepts ``NaN``, ``Infinity``, ``1E+999999`` (a 9-byte value that printed in full is a
million digits), ``1_000`` and ``-5``; each of those once escaped into the drug-library check
or the HL7 encoders. So a numeric field is only what its protocol documents: plain ASCII
digits with at most one point, no exponent, no underscores, a sign only where the field may be
negative, at most the documented number of decimals, and within the documented range.

What is *syntactically* wrong about a frame stays a frame error (the codec's business). A
well-formed field whose *value* is outside its documented range is :class:`ValueRejected`:
the driver reports that field as unknown (``None``) and warns through :class:`ValueWarnings`
(rate-limited, naming the pump, the field and the raw bytes, repr-escaped and bounded), so one
hostile value never becomes an exception further in nor a flood in the journal.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from decimal import Decimal

from common.errors import BadInput

RAW_SHOWN_MAX = 40
"""Characters of a rejected raw value shown in a log line (repr-escaped, then cut)."""

WARN_INTERVAL_S = 60.0
"""At most one warning per pump and field in this interval; the rest are counted."""

_PLAIN = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?", re.ASCII)


class ValueRejected(BadInput, ValueError):
    """A numeric field that is not a number its protocol allows (field -> unknown)."""

    def __init__(self, field: str, raw: str | bytes, reason: str) -> None:
        self.field, self.raw, self.reason = field, raw, reason
        super().__init__(f"{field}: {reason}: {shown(raw)}")


@dataclass(frozen=True, slots=True)
class NumberSpec:
    """What one protocol field may hold (documented per protocol in docs/pump-values.md).

    ``places``: most digits after the point; ``int_digits``: most digits before it;
    ``signed``: whether a leading ``-``/``+`` is allowed; ``minimum``/``maximum``: inclusive.
    """

    field: str
    minimum: Decimal
    maximum: Decimal
    places: int
    int_digits: int = 6
    signed: bool = False


def shown(raw: str | bytes, limit: int = RAW_SHOWN_MAX) -> str:
    """``raw`` repr-escaped and bounded, safe for one log line."""
    text = repr(raw[: limit * 4])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_number(raw: str | bytes, spec: NumberSpec) -> Decimal:
    """The exact value of ``raw`` under ``spec``; :class:`ValueRejected` otherwise.

    Accepts ``5``, ``5.``, ``.5``, ``05.250`` (protocols print all of these); never an
    exponent, ``NaN``/``Infinity``, underscores, whitespace or non-ASCII digits.
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ValueRejected(spec.field, raw, "not ASCII") from None
    else:
        text = raw
    if len(text) > spec.int_digits + spec.places + 2:
        raise ValueRejected(spec.field, raw, "too many characters")
    match = _PLAIN.fullmatch(text)
    if match is None or not (match[2] or match[3]):
        raise ValueRejected(spec.field, raw, "not a plain decimal number")
    sign, whole, frac = match[1], match[2], match[3] or ""
    if sign and not spec.signed:
        raise ValueRejected(spec.field, raw, "a sign is not allowed in this field")
    if len(whole.lstrip("0")) > spec.int_digits:
        raise ValueRejected(spec.field, raw, f"more than {spec.int_digits} integer digits")
    if len(frac) > spec.places:
        raise ValueRejected(spec.field, raw, f"more than {spec.places} decimal places")
    value = Decimal(f"{sign}{whole or '0'}.{frac}" if frac else f"{sign}{whole or '0'}")
    if not spec.minimum <= value <= spec.maximum:
        raise ValueRejected(spec.field, raw, f"outside {spec.minimum}..{spec.maximum}")
    return value


class ValueWarnings:
    """Rate-limited WARNINGs for rejected values: one per (pump, field) per interval.

    The count of suppressed repeats is given with the next warning, so nothing is silent.
    """

    def __init__(self, logger: logging.Logger, *, interval_s: float = WARN_INTERVAL_S) -> None:
        self._log = logger
        self._interval = interval_s
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def rejected(self, pump_id: str, error: ValueRejected) -> None:
        key = (pump_id, error.field)
        now = time.monotonic()
        if now - self._last.get(key, float("-inf")) < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        repeats = self._suppressed.pop(key, 0)
        self._log.warning(
            "pump %s: field %s unknown: %s (raw %s)%s",
            pump_id,
            error.field,
            error.reason,
            shown(error.raw),
            f"; {repeats} similar value(s) suppressed since the last warning" if repeats else "",
        )
