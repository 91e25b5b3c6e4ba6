"""Verdicts: what the checker concludes about one program, in a form every output can carry.

One program can earn several verdicts at once (a pump on an outdated library whose dose is
also above the soft maximum; a weight-based entry without a weight), so :func:`evaluate`
returns a :class:`VerdictSet`. Rules for the set:

* ``within_limits`` is present when at least one limit of the drug entry was compared and none
  failed (care-area device limits count as failures only); it names
  the dose (or rate) compared. It sits beside non-limit verdicts (``library_outdated``,
  ``weight_missing``, ``no_dose_check_possible`` ...), never beside a failed limit.
* The set is never empty; ``worst`` is the verdict with the highest severity.

Every verdict names the limit checked, the values compared with units, and the library
version and SHA-256 it was checked against (issue 7, item 4).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from drivers.model import Quantity


class VerdictKind(enum.StrEnum):
    WITHIN_LIMITS = "within_limits"
    BELOW_SOFT_MIN = "below_soft_min"
    ABOVE_SOFT_MAX = "above_soft_max"
    ABOVE_HARD_MAX = "above_hard_max"
    BELOW_HARD_MIN = "below_hard_min"
    DRUG_NOT_IN_LIBRARY = "drug_not_in_library"
    NO_DOSE_CHECK_POSSIBLE = "no_dose_check_possible"
    CARE_AREA_UNKNOWN = "care_area_unknown"
    WEIGHT_MISSING = "weight_missing"
    WEIGHT_OUTSIDE_LIMITS = "weight_outside_limits"
    WEIGHT_SUSPICIOUS = "weight_suspicious"
    LIBRARY_OUTDATED = "library_outdated"


class Severity(enum.StrEnum):
    """ok < info < warning < critical. Critical: a hard limit, or a likely 2.2x weight error."""

    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.OK: 0, Severity.INFO: 1, Severity.WARNING: 2, Severity.CRITICAL: 3}

LIMIT_KINDS = frozenset(
    {VerdictKind.BELOW_SOFT_MIN, VerdictKind.ABOVE_SOFT_MAX, VerdictKind.ABOVE_HARD_MAX, VerdictKind.BELOW_HARD_MIN}
)

DEFAULT_SEVERITY: dict[VerdictKind, Severity] = {
    VerdictKind.WITHIN_LIMITS: Severity.OK,
    VerdictKind.BELOW_SOFT_MIN: Severity.WARNING,
    VerdictKind.ABOVE_SOFT_MAX: Severity.WARNING,
    VerdictKind.ABOVE_HARD_MAX: Severity.CRITICAL,
    VerdictKind.BELOW_HARD_MIN: Severity.CRITICAL,
    VerdictKind.DRUG_NOT_IN_LIBRARY: Severity.WARNING,
    VerdictKind.NO_DOSE_CHECK_POSSIBLE: Severity.INFO,
    VerdictKind.CARE_AREA_UNKNOWN: Severity.WARNING,
    VerdictKind.WEIGHT_MISSING: Severity.WARNING,
    VerdictKind.WEIGHT_OUTSIDE_LIMITS: Severity.WARNING,  # CRITICAL when a hard weight limit is crossed
    VerdictKind.WEIGHT_SUSPICIOUS: Severity.CRITICAL,
    VerdictKind.LIBRARY_OUTDATED: Severity.WARNING,
}

# Position along the dose axis; used to state (and test) that verdicts are monotonic in dose.
DOSE_ORDER: dict[VerdictKind, int] = {
    VerdictKind.BELOW_HARD_MIN: 0,
    VerdictKind.BELOW_SOFT_MIN: 1,
    VerdictKind.WITHIN_LIMITS: 2,
    VerdictKind.ABOVE_SOFT_MAX: 3,
    VerdictKind.ABOVE_HARD_MAX: 4,
}


def _q(q: Quantity | None) -> dict[str, str] | None:
    # Decimals travel as strings so that 15.375 stays 15.375 in JSON consumers.
    return None if q is None else {"value": str(q.value), "unit": q.unit}


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    severity: Severity
    text: str
    library_version: str
    library_sha256: str
    limit_name: str | None = None  # e.g. "dose.soft_max", "weight_kg.hard_max", "care_area.max_rate_ml_h"
    value: Quantity | None = None  # the program's value compared
    limit: Quantity | None = None  # the limit it was compared with
    tolerance: Quantity | None = None  # allowance for a dose back-calculated from a rounded rate
    care_area: str | None = None
    drug: str | None = None
    entry_id: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "text": self.text,
            "limit_name": self.limit_name,
            "value": _q(self.value),
            "limit": _q(self.limit),
            "tolerance": _q(self.tolerance),
            "care_area": self.care_area,
            "drug": self.drug,
            "entry_id": self.entry_id,
            "library_version": self.library_version,
            "library_sha256": self.library_sha256,
        }


@dataclass(frozen=True, slots=True)
class VerdictSet:
    """All verdicts on one program, in the order they were found (library, area, weight, dose)."""

    verdicts: tuple[Verdict, ...]
    library_version: str = ""
    library_sha256: str = ""

    def __iter__(self) -> Iterator[Verdict]:
        return iter(self.verdicts)

    def __len__(self) -> int:
        return len(self.verdicts)

    @property
    def kinds(self) -> tuple[VerdictKind, ...]:
        return tuple(v.kind for v in self.verdicts)

    @property
    def worst(self) -> Verdict:
        return max(self.verdicts, key=lambda v: v.severity.rank)

    @property
    def severity(self) -> Severity:
        return self.worst.severity

    def dose_kind(self) -> VerdictKind | None:
        """The limit outcome of the dose check, if one ran."""
        for v in self.verdicts:
            if v.kind in DOSE_ORDER and (v.limit_name or "").startswith("dose"):
                return v.kind
        return None

    def to_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity.value,
            "library_version": self.library_version,
            "library_sha256": self.library_sha256,
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


def quantity(value: Decimal, unit: str) -> Quantity:
    return Quantity(value, unit)
