"""What the checker reports: one :class:`Finding` per violation, with its position."""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.pcd.parse import Segment

# HL7 DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ] (TF2-R10 B.1 MSH-7).
DTM_RE = re.compile(r"^\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?$")


# Severity as the TF's own wording gives it (docs/hl7.md, "Severities"): a SHALL / R / required
# element broken is an error; what the TF tolerates, deprecates or leaves as a recommendation
# is a warning -- a receiver reads such a message correctly (stray blanks are trimmed, the
# alternative ACM OID and OBX-8 priority are understood).
WARNING_RULES = frozenset(
    {
        "STRAY-BLANK",  # B.1/§2.2: values are read trimmed; a defect of the sender, not of the data
        "MSH-21-ALT",  # the OID printed in the TF's own B.1 example and E.3: tolerated
        "PCD04-FACET-OBX8",  # B.8.5: the OBX-8 style is deprecated, still understood
        "PCD04-LEGACY-FACET-ID",  # legacy facet sub-id: deprecated numbering, alert still identified
        "MDC-UCUM-CODE",  # the MDC triplet beside it is correct and preferred (A.1)
        "SEG-EMPTY",  # an empty line between segments: skipped by every receiver
    }
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One violation: rule id, 1-based segment number (0 = whole message), field position."""

    rule: str
    segment: int
    segment_id: str
    field: int | None
    message: str
    severity: str = "error"  # error | warning (WARNING_RULES)

    def position(self) -> str:
        if self.segment == 0:
            return "message"
        where = f"segment {self.segment} {self.segment_id}"
        return f"{where}-{self.field}" if self.field is not None else where

    def __str__(self) -> str:
        note = "warning: " if self.severity == "warning" else ""
        return f"{self.position()}: [{self.rule}] {note}{self.message}"


class Findings(list[Finding]):
    """Collects findings while the rules run."""

    def add(self, rule: str, seg: Segment | None, field: int | None, message: str) -> None:
        severity = "warning" if rule in WARNING_RULES else "error"
        self.append(Finding(rule, seg.number if seg else 0, seg.name if seg else "", field, message, severity))
