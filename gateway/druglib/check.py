"""Check one program a pump reports against the library in force (issue 7, item 4).

Order of checks, each adding verdicts: the pump's library version; the care area (without one
nothing else can be looked up); the care area's device limits (max rate, max VTBI); the
patient weight (care-area limits, and the expected weight when one is known); the drug; the
concentration; then the dose, rate or duration limits of the matching entry.

When the pump does not say which therapy it used and a drug has several entries with the same
concentration (heparin "VTE" vs "cardiac"), every candidate is checked and the *least severe*
outcome is reported, naming the entry assumed: the pump accepted the program under one of
them, and reporting the harshest would raise alerts the clinician never saw.

Comparisons: a dose the pump reports is compared exactly; a dose back-calculated from the
reported rate gets a tolerance of one rate step (see :mod:`gateway.druglib.dose`).
"""

from __future__ import annotations

from decimal import Decimal

from drivers.model import Quantity
from gateway.druglib.compare import compare, convert_for_entry, fmt
from gateway.druglib.entry_check import EntryCheck
from gateway.druglib.errors import UnitError
from gateway.druglib.load import LoadedLibrary, normalise_name
from gateway.druglib.model import CareArea, Entry
from gateway.druglib.program import ProgramUnderCheck, finite_program, program_from_channel
from gateway.druglib.units import (
    amount_unit,
    concentration_per_ml,
    concentration_unit,
    dose_unit,
    weight_to_kg,
)
from gateway.druglib.verdicts import DEFAULT_SEVERITY, LIMIT_KINDS, Severity, Verdict, VerdictKind, VerdictSet

LB_PER_KG = Decimal("2.20462262")  # 1 / 0.45359237 (reference [R48]), to 9 digits
# A weight 2.0-2.4x (or 1/2.4-1/2.0x) the expected one is read as pounds entered as kilograms
# (or the reverse); ratios further from 1 than 10 % are reported as a plain mismatch (IHE 9011).
LB_KG_BAND = (Decimal("2.0"), Decimal("2.4"))
WEIGHT_MISMATCH = Decimal("0.10")
# Fixed concentrations match when within 0.1 % (pumps report rounded concentrations, e.g. 0.016 mg/mL).
CONCENTRATION_MATCH = Decimal("0.001")
_ML = amount_unit("mL")


__all__ = ["ProgramUnderCheck", "evaluate", "program_from_channel"]


def evaluate(library: LoadedLibrary, program: ProgramUnderCheck) -> VerdictSet:
    """The verdicts for ``program``; never raises for anything a pump can report.

    A non-finite or absurd number (NaN, Infinity, 1E+999999) is taken out before any
    arithmetic and reported as "no dose check possible"; an arithmetic error the limits of
    :mod:`decimal` still find deeper in is reported the same way, never raised into the
    poller (one bad value must not silence a rack).
    """
    clean, dropped = finite_program(program)
    check = _Check(library, clean)
    for name in dropped:
        check.add(
            VerdictKind.NO_DOSE_CHECK_POSSIBLE, f"{name} reported by the pump is not a usable number", limit_name=name
        )
    try:
        return check.run()
    except ArithmeticError as exc:  # decimal.InvalidOperation / Overflow / DivisionByZero
        fallback = _Check(library, clean)
        fallback.add(
            VerdictKind.NO_DOSE_CHECK_POSSIBLE,
            f"the program's numbers cannot be checked ({type(exc).__name__})",
            limit_name="program",
        )
        return fallback.finish([])


class _Check:
    def __init__(self, library: LoadedLibrary, program: ProgramUnderCheck) -> None:
        self.lib = library
        self.p = program
        self.out: list[Verdict] = []
        self.area: CareArea | None = None

    # -- assembly -------------------------------------------------------------------------
    def verdict(
        self, kind: VerdictKind, text: str, *, severity: Severity | None = None, entry: Entry | None = None, **kw
    ) -> Verdict:
        return Verdict(
            kind=kind,
            severity=severity or DEFAULT_SEVERITY[kind],
            text=text,
            library_version=self.lib.version,
            library_sha256=self.lib.sha256,
            care_area=self.area.id if self.area else self.p.care_area,
            drug=self.p.drug,
            entry_id=entry.id if entry else None,
            **kw,
        )

    def add(self, kind: VerdictKind, text: str, **kw) -> None:
        self.out.append(self.verdict(kind, text, **kw))

    def finish(self, within: list[Verdict]) -> VerdictSet:
        verdicts = list(self.out)
        if within and not any(v.kind in LIMIT_KINDS for v in verdicts):
            verdicts.append(within[0])
        if not verdicts:
            verdicts.append(
                self.verdict(VerdictKind.NO_DOSE_CHECK_POSSIBLE, "nothing reported that the library could check")
            )
        return VerdictSet(tuple(verdicts), self.lib.version, self.lib.sha256)

    # -- the checks -----------------------------------------------------------------------
    def run(self) -> VerdictSet:
        p = self.p
        if p.pump_library_version and not self.lib.is_current(p.pump_library_version):
            self.add(
                VerdictKind.LIBRARY_OUTDATED,
                f"pump runs drug library {p.pump_library_version!r}; the library in force is {self.lib.version!r}",
                limit_name="library_version",
            )
        self.area = self.lib.care_area(p.care_area)
        if self.area is None:
            known = ", ".join(a.id for a in self.lib.library.care_areas)
            what = (
                f"care area {p.care_area!r} is not in the library"
                if p.care_area
                else "no care area reported or configured"
            )
            self.add(
                VerdictKind.CARE_AREA_UNKNOWN,
                f"{what} (known: {known}); limits cannot be looked up",
                limit_name="care_area",
            )
            return self.finish([])
        rate = self.rate_ml_h()
        self.device_limits(rate)
        weight = self.weight_kg()
        if not p.drug:
            self.add(
                VerdictKind.DRUG_NOT_IN_LIBRARY,
                "no drug selected: basic infusion outside the library",
                limit_name="drug",
            )
            return self.finish([])
        candidates = self.lib.candidates(self.area.id, p.drug)
        if p.therapy:
            chosen = [e for e in candidates if normalise_name(e.therapy) == normalise_name(p.therapy)]
            candidates = tuple(chosen) or candidates
        if not candidates:
            elsewhere = self.lib.drug_known_elsewhere(p.drug)
            hint = f" (it is in care area(s) {', '.join(elsewhere)})" if elsewhere else ""
            self.add(
                VerdictKind.DRUG_NOT_IN_LIBRARY,
                f"{p.drug!r} is not in the library for care area {self.area.id}{hint}",
                limit_name="drug",
            )
            return self.finish([])
        matched = self.match_concentration(candidates)
        if not matched:
            return self.finish([])
        outcomes = [EntryCheck(self.verdict, p, entry, conc, weight, rate).run() for entry, conc in matched]
        best_verdicts, best_within = min(
            outcomes, key=lambda o: (max((v.severity.rank for v in o[0]), default=0), len(o[0]))
        )
        self.out += best_verdicts
        return self.finish(best_within)

    def rate_ml_h(self) -> Decimal | None:
        r = self.p.rate
        if r is None:
            return None
        try:
            return convert_for_entry(r.value, dose_unit(r.unit), dose_unit("mL/h"), None, None)
        except (UnitError, ValueError) as exc:
            self.add(
                VerdictKind.NO_DOSE_CHECK_POSSIBLE,
                f"rate unit {r.unit!r} is not a volume rate: {exc}",
                limit_name="rate",
            )
            return None

    def device_limits(self, rate: Decimal | None) -> None:
        """The care area's pump limits (max rate, max VTBI) apply to every program, library or not.

        Passing them earns no ``within_limits`` of its own: that verdict speaks for the drug entry.
        """
        assert self.area is not None
        checks = [("care_area.max_rate_ml_h", "rate", rate, self.area.max_rate_ml_h, "mL/h")]
        vtbi = self.p.vtbi
        if vtbi is not None and vtbi.unit in ("mL", "ml"):
            checks.append(("care_area.max_vtbi_ml", "VTBI", vtbi.value, self.area.max_vtbi_ml, "mL"))
        for name, label, value, limit, unit in checks:
            if value is not None and limit is not None and value > limit:
                self.add(
                    VerdictKind.ABOVE_HARD_MAX,
                    f"{label} {fmt(value)} {unit} is above the care area's maximum {fmt(limit)} {unit}",
                    limit_name=name,
                    value=Quantity(value, unit),
                    limit=Quantity(limit, unit),
                )

    def weight_kg(self) -> Decimal | None:
        assert self.area is not None
        w = self.p.patient_weight
        if w is None:
            return None
        try:
            kg = weight_to_kg(w.value, w.unit)
        except UnitError as exc:
            self.add(
                VerdictKind.WEIGHT_MISSING, f"weight {w} has an unknown unit: {exc.reason}", limit_name="weight_kg"
            )
            return None
        if kg <= 0:
            self.add(VerdictKind.WEIGHT_MISSING, f"weight {w} is not a weight", limit_name="weight_kg")
            return None
        if self.area.weight_kg is not None:
            kind, name, limit = compare(kg, self.area.weight_kg.values(), Decimal(0))
            if kind is not VerdictKind.WITHIN_LIMITS:
                hard = name.startswith("hard")
                self.add(
                    VerdictKind.WEIGHT_OUTSIDE_LIMITS,
                    f"weight {fmt(kg)} kg is {'above' if 'max' in name else 'below'} the care area's {name.replace('_', ' ')} {fmt(limit)} kg",
                    severity=Severity.CRITICAL if hard else Severity.WARNING,
                    limit_name=f"weight_kg.{name}",
                    value=Quantity(kg, "kg"),
                    limit=Quantity(limit, "kg"),
                )
        self.expected_weight(kg)
        return kg

    def expected_weight(self, kg: Decimal) -> None:
        e = self.p.expected_weight
        if e is None:
            return
        try:
            expected = weight_to_kg(e.value, e.unit)
        except UnitError:
            return
        if expected <= 0:
            return
        ratio = kg / expected
        lo, hi = LB_KG_BAND
        common = dict(limit_name="weight_kg.expected", value=Quantity(kg, "kg"), limit=Quantity(expected, "kg"))
        if lo <= ratio <= hi or lo <= 1 / ratio <= hi:
            self.add(
                VerdictKind.WEIGHT_SUSPICIOUS,
                f"weight {fmt(kg)} kg is {fmt(ratio.quantize(Decimal('0.01')))}x the expected {fmt(expected)} kg: "
                f"pounds entered as kilograms? (1 kg = {LB_PER_KG} lb)",
                **common,
            )
        elif abs(ratio - 1) > WEIGHT_MISMATCH:
            self.add(
                VerdictKind.WEIGHT_SUSPICIOUS,
                f"weight {fmt(kg)} kg differs from the expected {fmt(expected)} kg by more than 10 %",
                severity=Severity.WARNING,
                **common,
            )

    def match_concentration(self, candidates: tuple[Entry, ...]) -> list[tuple[Entry, Decimal | None]]:
        """Entries whose concentration fits the reported one, with that concentration per mL."""
        pc = self.p.concentration
        if pc is None:
            return [(e, None) for e in candidates]
        try:
            cu = concentration_unit(pc.unit)
        except UnitError as exc:
            self.add(
                VerdictKind.NO_DOSE_CHECK_POSSIBLE,
                f"concentration unit {pc.unit!r}: {exc.reason}",
                limit_name="concentration",
            )
            return []
        out: list[tuple[Entry, Decimal | None]] = []
        offered: list[str] = []
        for e in candidates:
            c = e.concentration
            if c is None:
                out.append((e, None))
                continue
            amount = amount_unit(c.amount_unit)
            if cu.amount.family is not amount.family:
                offered.append(f"{c.amount_unit}/mL")
                continue
            per_ml = concentration_per_ml(pc.value, cu, amount)
            if c.custom:
                out.append((e, per_ml))
                continue
            assert c.amount is not None and c.volume_ml is not None
            fixed = c.amount / c.volume_ml
            offered.append(f"{fmt(fixed)} {c.amount_unit}/mL")
            if abs(per_ml - fixed) <= fixed * CONCENTRATION_MATCH:
                out.append((e, per_ml))
        if not out:
            assert self.area is not None
            self.add(
                VerdictKind.NO_DOSE_CHECK_POSSIBLE,
                f"concentration {pc} matches no {self.p.drug} entry in {self.area.id} (library: {', '.join(offered)})",
                severity=Severity.WARNING,
                limit_name="concentration",
                value=pc,
            )
        return out
