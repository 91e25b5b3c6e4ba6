"""How drug-library verdicts travel in PCD-01 / PCD-10: OBX rows the HL7 encoder appends under a channel.

It lives in the HL7 layer, not in ``gateway.druglib``: the drug library judges programs and
knows no wire format (design.md §4; tests/test_import_rules.py).

IEEE 11073-10101 has no terms for a gateway's library verdict (the IHE hooks are the pump's
own library version 184517 and care area 184516, reference drug-library.md §9), so verdicts use
a local code system, ``99PUMPGW`` (HL7's "99" prefix marks a locally defined table). Each
verdict is one metric: a CWE row carrying the verdict kind, followed by facet rows for the
limit, the compared values with units, and the library identity. OBX-8 (abnormal flags,
HL7 table 0078) carries the direction: N, L, LL, H, HH, or A for other findings.

This module returns data, not HL7 text: the encoder owns escaping, OBX-1 numbering and the
containment prefix of OBX-4 (``<MDS>.<VMD>.<CHAN>.<METRIC>``). ``refid`` here is the relative
part: ``<verdict index>`` for the verdict row and ``<verdict index>.<facet>`` for its facets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from gateway.druglib.verdicts import Verdict, VerdictKind

CODING_SYSTEM = "99PUMPGW"

# code, REFID-like mnemonic, HL7 value type
VERDICT = ("9001", "PUMPGW_DRUGLIB_VERDICT", "CWE")
LIMIT_NAME = ("9002", "PUMPGW_DRUGLIB_LIMIT_NAME", "ST")
VALUE = ("9003", "PUMPGW_DRUGLIB_VALUE_COMPARED", "NM")
LIMIT = ("9004", "PUMPGW_DRUGLIB_LIMIT_VALUE", "NM")
TOLERANCE = ("9005", "PUMPGW_DRUGLIB_TOLERANCE", "NM")
LIBRARY_VERSION = ("9006", "PUMPGW_DRUGLIB_LIBRARY_VERSION", "ST")
LIBRARY_SHA256 = ("9007", "PUMPGW_DRUGLIB_LIBRARY_SHA256", "ST")
ENTRY_ID = ("9008", "PUMPGW_DRUGLIB_ENTRY_ID", "ST")

FLAGS: dict[VerdictKind, str] = {
    VerdictKind.WITHIN_LIMITS: "N",
    VerdictKind.BELOW_SOFT_MIN: "L",
    VerdictKind.BELOW_HARD_MIN: "LL",
    VerdictKind.ABOVE_SOFT_MAX: "H",
    VerdictKind.ABOVE_HARD_MAX: "HH",
}


class VerdictObservation(NamedTuple):
    """One OBX row: OBX-3 (code, refid-mnemonic, coding system), OBX-4 suffix, OBX-2, OBX-5, OBX-6, OBX-8.

    ``value`` is a string for ST/NM rows and a (identifier, text, coding system) triple for CWE.
    ``unit`` is UCUM (the HL7 encoder may add the MDC unit code where it has one).
    """

    code: str
    mnemonic: str
    coding_system: str
    sub_id: str
    value_type: str
    value: str | tuple[str, str, str]
    unit: str | None
    abnormal_flag: str


def verdict_observations(verdicts: Iterable[Verdict]) -> list[VerdictObservation]:
    rows: list[VerdictObservation] = []
    for index, v in enumerate(verdicts, start=1):
        flag = FLAGS.get(v.kind, "A")

        def row(
            term: tuple[str, str, str], facet: int, value, unit: str | None = None, index: int = index, flag: str = flag
        ) -> None:
            code, mnemonic, value_type = term
            rows.append(
                VerdictObservation(
                    code,
                    mnemonic,
                    CODING_SYSTEM,
                    f"{index}.{facet}" if facet else str(index),
                    value_type,
                    value,
                    unit,
                    flag,
                )
            )

        row(VERDICT, 0, (v.kind.value, v.text, CODING_SYSTEM))
        facet = 0
        for term, value, unit in (
            (LIMIT_NAME, v.limit_name, None),
            (VALUE, str(v.value.value) if v.value else None, v.value.unit if v.value else None),
            (LIMIT, str(v.limit.value) if v.limit else None, v.limit.unit if v.limit else None),
            (TOLERANCE, str(v.tolerance.value) if v.tolerance else None, v.tolerance.unit if v.tolerance else None),
            (ENTRY_ID, v.entry_id, None),
            (LIBRARY_VERSION, v.library_version, None),
            (LIBRARY_SHA256, v.library_sha256, None),
        ):
            if value:
                facet += 1
                row(term, facet, value, unit)
    return rows
