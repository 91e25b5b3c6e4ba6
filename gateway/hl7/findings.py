"""What the checker reports: one :class:`Finding` per violation, with its position."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.hl7.parse import Segment

# HL7 DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ] (TF2-R10 B.1 MSH-7).
DTM_RE = re.compile(r"^\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?$")


@dataclass(frozen=True, slots=True)
class Finding:
    """One violation: rule id, 1-based segment number (0 = whole message), field position."""

    rule: str
    segment: int
    segment_id: str
    field: int | None
    message: str

    def position(self) -> str:
        if self.segment == 0:
            return "message"
        where = f"segment {self.segment} {self.segment_id}"
        return f"{where}-{self.field}" if self.field is not None else where

    def __str__(self) -> str:
        return f"{self.position()}: [{self.rule}] {self.message}"


class Findings(list[Finding]):
    """Collects findings while the rules run."""

    def add(self, rule: str, seg: Segment | None, field: int | None, message: str) -> None:
        self.append(Finding(rule, seg.number if seg else 0, seg.name if seg else "", field, message))
