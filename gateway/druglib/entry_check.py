"""One library entry's limits against the program a pump reports (the last step of the check).

``gateway.druglib.check`` finds the entries that may apply (care area, drug, therapy,
concentration); each is checked here -- PCA entries only matched, rate-only (fluid) entries by
rate, intermittent ones by total dose and duration, continuous ones by dose: the pump's own
dose compared exactly, or a dose back-calculated from the rate with a tolerance of one rate
step (gateway/druglib/dose.py).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from drivers.model import Quantity
from gateway.druglib.compare import compare, convert_for_entry, duration_rate_limits, fmt
from gateway.druglib.dose import dose_from_rate, dose_tolerance, intermittent_dose, rate_step
from gateway.druglib.errors import UnitError
from gateway.druglib.model import Entry
from gateway.druglib.program import ProgramUnderCheck
from gateway.druglib.units import (
    ConcentrationUnit,
    DoseUnit,
    Family,
    amount_unit,
    concentration_per_ml,
    concentration_unit,
    dose_unit,
)
from gateway.druglib.verdicts import Verdict, VerdictKind

_ML = amount_unit("mL")

VerdictFactory = Callable[..., Verdict]  # _Check.verdict: (kind, text, *, entry=..., limit_name=..., ...)


class EntryCheck:
    """One candidate entry against the program: its dose, rate, concentration and duration limits.

    ``out`` gets what is wrong or uncheckable, ``within`` what passed; the caller keeps the
    least severe outcome of all candidate entries (module docstring of gateway/druglib/check.py).
    """

    def __init__(
        self,
        verdict: VerdictFactory,
        program: ProgramUnderCheck,
        entry: Entry,
        conc: Decimal | None,
        weight: Decimal | None,
        rate: Decimal | None,
    ) -> None:
        self.verdict, self.p, self.e = verdict, program, entry
        self.conc, self.weight, self.rate = conc, weight, rate
        self.out: list[Verdict] = []
        self.within: list[Verdict] = []

    def limit_check(self, what: str, value: Decimal, unit_text: str, limits: dict[str, Decimal], tol: Decimal) -> None:
        e = self.e
        kind, name, limit = compare(value, limits, tol)
        tq = Quantity(tol, unit_text) if tol else None
        label = f"{self.p.drug}{' (' + e.therapy + ')' if e.therapy else ''}: {what.replace('_', ' ')} {fmt(value)} {unit_text}"
        if kind is VerdictKind.WITHIN_LIMITS:
            shown = ", ".join(f"{k.replace('_', ' ')} {fmt(v)}" for k, v in limits.items())
            self.within.append(
                self.verdict(
                    kind,
                    f"{label} within limits ({shown} {unit_text})",
                    entry=e,
                    limit_name=what,
                    value=Quantity(value, unit_text),
                    tolerance=tq,
                )
            )
        else:
            word = {
                "hard_max": "above the hard maximum",
                "soft_max": "above the soft maximum",
                "hard_min": "below the hard minimum",
                "soft_min": "below the soft minimum",
            }[name]
            self.out.append(
                self.verdict(
                    kind,
                    f"{label} is {word} {fmt(limit)} {unit_text}",
                    entry=e,
                    limit_name=f"{what}.{name}",
                    value=Quantity(value, unit_text),
                    limit=Quantity(limit, unit_text),
                    tolerance=tq,
                )
            )

    def note(self, kind: VerdictKind, text: str, **kw: Any) -> None:
        self.out.append(self.verdict(kind, text, entry=self.e, **kw))

    def run(self) -> tuple[list[Verdict], list[Verdict]]:
        e, conc, weight, rate = self.e, self.conc, self.weight, self.rate
        out, within = self.out, self.within
        note, limit_check = self.note, self.limit_check
        unit = dose_unit(e.dose_unit)
        if e.kind == "pca":
            note(
                VerdictKind.NO_DOSE_CHECK_POSSIBLE,
                f"{e.drug} is a PCA entry: demand dose and lockout are not reported, only the library match is checked",
                limit_name="dose",
            )
            return out, within
        if unit.family is Family.VOLUME:
            if e.kind != "fluid":
                note(
                    VerdictKind.NO_DOSE_CHECK_POSSIBLE,
                    f"{e.drug} entry {e.id} is rate only (mL/h): no dose can be computed",
                    limit_name="dose",
                )
            if e.rate_limits_ml_h is not None and rate is not None:
                limit_check("rate", rate, "mL/h", e.rate_limits_ml_h.values(), Decimal(0))
            elif rate is None:
                note(VerdictKind.NO_DOSE_CHECK_POSSIBLE, "no rate reported", limit_name="rate")
            return out, within
        bsa = self.p.bsa.value if self.p.bsa is not None and self.p.bsa.unit in ("m2", "m^2") else None
        if unit.per_kg and weight is None:
            note(
                VerdictKind.WEIGHT_MISSING,
                f"{e.drug} is dosed in {unit.ucum} but the pump reports no patient weight",
                limit_name="weight_kg",
            )
        c = e.concentration
        assert c is not None
        amount = amount_unit(c.amount_unit)
        per_ml_unit = ConcentrationUnit(amount, _ML)
        if c.custom:
            if conc is None:
                note(
                    VerdictKind.NO_DOSE_CHECK_POSSIBLE,
                    f"custom concentration of {e.drug} not reported: the dose cannot be recomputed",
                    limit_name="concentration",
                )
            elif c.limits is None:
                note(
                    VerdictKind.NO_DOSE_CHECK_POSSIBLE,
                    f"custom concentration {fmt(conc)} {amount.ucum}/mL of {e.drug} has no concentration limits in the library",
                    limit_name="concentration",
                )
            else:
                lcu = concentration_unit(c.limits_unit or "")
                in_limit_unit = concentration_per_ml(conc, per_ml_unit, lcu.amount) * lcu.volume.factor
                limit_check("concentration", in_limit_unit, lcu.ucum, c.limits.values(), Decimal(0))
        elif conc is None:
            assert c.amount is not None and c.volume_ml is not None
            conc = c.amount / c.volume_ml
        assert e.dose_limits is not None
        if e.kind == "intermittent":
            self.intermittent(unit, conc, per_ml_unit, bsa)
            return out, within
        dose: Decimal | None = None
        tol = Decimal(0)
        try:
            if self.p.dose_rate is not None:
                dose = convert_for_entry(self.p.dose_rate.value, dose_unit(self.p.dose_rate.unit), unit, weight, bsa)
            elif rate is not None and conc is not None and self.p.rate is not None:
                step = self.p.rate_step_ml_h or rate_step(self.p.rate.value)
                dose = dose_from_rate(
                    rate, unit, concentration=conc, concentration_unit=per_ml_unit, weight_kg=weight, bsa_m2=bsa
                )
                tol = dose_tolerance(
                    step, unit, concentration=conc, concentration_unit=per_ml_unit, weight_kg=weight, bsa_m2=bsa
                )
            else:
                note(
                    VerdictKind.NO_DOSE_CHECK_POSSIBLE,
                    "neither a dose nor a rate with a known concentration is reported",
                    limit_name="dose",
                )
        except UnitError as exc:
            note(
                VerdictKind.NO_DOSE_CHECK_POSSIBLE,
                f"pump dose unit does not match the library entry ({unit.ucum}): {exc}",
                limit_name="dose",
            )
        except ValueError as exc:
            note(VerdictKind.NO_DOSE_CHECK_POSSIBLE, f"dose cannot be computed: {exc}", limit_name="dose")
        if dose is not None:
            limit_check("dose", dose, unit.ucum, e.dose_limits.values(), tol)
        return out, within

    def intermittent(
        self, unit: DoseUnit, conc: Decimal | None, per_ml_unit: ConcentrationUnit, bsa: Decimal | None
    ) -> None:
        """Total dose from the programmed volume; duration limits as rates from the diluent volume."""
        e, weight, rate, limit_check, note = self.e, self.weight, self.rate, self.limit_check, self.note
        c = e.concentration
        assert c is not None and e.dose_limits is not None
        volume = self.p.vtbi.value if self.p.vtbi is not None and self.p.vtbi.unit in ("mL", "ml") else c.volume_ml
        if conc is not None and volume is not None:
            try:
                total = intermittent_dose(
                    volume, unit, concentration=conc, concentration_unit=per_ml_unit, weight_kg=weight, bsa_m2=bsa
                )
                limit_check("dose", total, unit.ucum, e.dose_limits.values(), Decimal(0))
            except ValueError as exc:
                note(VerdictKind.NO_DOSE_CHECK_POSSIBLE, f"total dose cannot be computed: {exc}", limit_name="dose")
        if rate is not None and e.duration_limits_min is not None and c.volume_ml is not None:
            limit_check(
                "rate_from_duration", rate, "mL/h", duration_rate_limits(c.volume_ml, e.duration_limits_min), Decimal(0)
            )
