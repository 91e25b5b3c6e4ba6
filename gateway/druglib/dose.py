"""Dose <-> rate on ``Decimal`` (reference drug-library.md §3.1, §3.3).

    rate_mL_h = dose x weight_kg (if /kg) x BSA_m2 (if /m2) x per_hour(time) / concentration

with the concentration expressed in the dose's own amount unit per mL (converted within the
unit family, never across). ``per_hour`` is x60 for /min, x1 for /h, /24 for /d; an
intermittent (total) dose becomes a volume ``VTBI = dose / C`` and a rate ``VTBI / duration``.

Rounding: all arithmetic runs in :data:`DOSE_CONTEXT` (28 significant digits, half-even), so
results that are exact in decimal stay exact: 0.04 units/min at 0.4 units/mL is ``6`` mL/h, not
the binary-float 5.999999999999999. Nothing here rounds to a display precision; callers do.

Tolerance: a pump rounds the rate it delivers and reports (15.375 mL/h is reported as 15.4),
so a dose recomputed from a reported rate is off by up to half a rate step. The checker
allows one full rate step (:func:`dose_tolerance`), as the reference recommends (§3.3, §11.5).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow, localcontext

from gateway.druglib.errors import UnitError
from gateway.druglib.units import PER_HOUR, ConcentrationUnit, DoseUnit, Family, concentration_per_ml

DOSE_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])


def _scale(unit: DoseUnit, weight_kg: Decimal | None, bsa_m2: Decimal | None) -> Decimal:
    """The patient factor of a per-kg or per-m² unit (1 otherwise)."""
    if unit.per_kg:
        if weight_kg is None or weight_kg <= 0:
            raise ValueError(f"a weight in kg > 0 is needed for {unit.ucum}")
        return weight_kg
    if unit.per_m2:
        if bsa_m2 is None or bsa_m2 <= 0:
            raise ValueError(f"a body surface area in m2 > 0 is needed for {unit.ucum}")
        return bsa_m2
    return Decimal(1)


def _conc(unit: DoseUnit, concentration: Decimal, concentration_unit: ConcentrationUnit) -> Decimal:
    if concentration <= 0:
        raise ValueError(f"concentration must be > 0 (got {concentration})")
    return concentration_per_ml(concentration, concentration_unit, unit.amount)


def rate_from_dose(
    dose: Decimal,
    unit: DoseUnit,
    *,
    concentration: Decimal | None = None,
    concentration_unit: ConcentrationUnit | None = None,
    weight_kg: Decimal | None = None,
    bsa_m2: Decimal | None = None,
) -> Decimal:
    """mL/h delivering ``dose`` of a continuous ``unit`` (``amount[/kg|/m2]/time``)."""
    if unit.time is None:
        raise UnitError(unit.ucum, "a continuous dose needs a time base (/min, /h or /d)")
    mul, div = PER_HOUR[unit.time]
    with localcontext(DOSE_CONTEXT):
        if unit.family is Family.VOLUME:  # rate-only: mL/h, mL/kg/min ...
            return dose * unit.amount.factor * _scale(unit, weight_kg, bsa_m2) * mul / div
        if concentration is None or concentration_unit is None:
            raise ValueError(f"a concentration is needed to turn {unit.ucum} into mL/h")
        per_ml = _conc(unit, concentration, concentration_unit)
        return dose * _scale(unit, weight_kg, bsa_m2) * mul / (div * per_ml)


def dose_from_rate(
    rate_ml_h: Decimal,
    unit: DoseUnit,
    *,
    concentration: Decimal | None = None,
    concentration_unit: ConcentrationUnit | None = None,
    weight_kg: Decimal | None = None,
    bsa_m2: Decimal | None = None,
) -> Decimal:
    """The dose in ``unit`` that ``rate_ml_h`` delivers: the inverse of :func:`rate_from_dose`."""
    if unit.time is None:
        raise UnitError(unit.ucum, "a continuous dose needs a time base (/min, /h or /d)")
    mul, div = PER_HOUR[unit.time]
    with localcontext(DOSE_CONTEXT):
        if unit.family is Family.VOLUME:
            return rate_ml_h * div / (unit.amount.factor * _scale(unit, weight_kg, bsa_m2) * mul)
        if concentration is None or concentration_unit is None:
            raise ValueError(f"a concentration is needed to turn mL/h into {unit.ucum}")
        per_ml = _conc(unit, concentration, concentration_unit)
        return rate_ml_h * per_ml * div / (_scale(unit, weight_kg, bsa_m2) * mul)


def intermittent_volume(
    total_dose: Decimal,
    unit: DoseUnit,
    *,
    concentration: Decimal,
    concentration_unit: ConcentrationUnit,
    weight_kg: Decimal | None = None,
    bsa_m2: Decimal | None = None,
) -> Decimal:
    """mL holding a total dose (``mg``, ``mg/kg``, ``mg/m2``): ``VTBI = dose x W|BSA / C``."""
    if unit.time is not None:
        raise UnitError(unit.ucum, "an intermittent dose is a total amount, without a time base")
    with localcontext(DOSE_CONTEXT):
        return total_dose * _scale(unit, weight_kg, bsa_m2) / _conc(unit, concentration, concentration_unit)


def intermittent_dose(
    volume_ml: Decimal,
    unit: DoseUnit,
    *,
    concentration: Decimal,
    concentration_unit: ConcentrationUnit,
    weight_kg: Decimal | None = None,
    bsa_m2: Decimal | None = None,
) -> Decimal:
    """The total dose (in ``unit``) held by ``volume_ml``: the inverse of :func:`intermittent_volume`."""
    if unit.time is not None:
        raise UnitError(unit.ucum, "an intermittent dose is a total amount, without a time base")
    with localcontext(DOSE_CONTEXT):
        return volume_ml * _conc(unit, concentration, concentration_unit) / _scale(unit, weight_kg, bsa_m2)


def intermittent_rate(volume_ml: Decimal, duration_min: Decimal) -> Decimal:
    """mL/h that infuses ``volume_ml`` in ``duration_min`` minutes."""
    if duration_min <= 0:
        raise ValueError(f"duration must be > 0 min (got {duration_min})")
    with localcontext(DOSE_CONTEXT):
        return volume_ml * 60 / duration_min


def duration_as_rate(diluent_ml: Decimal, duration_min: Decimal) -> Decimal:
    """An intermittent duration limit as the rate limit the pump enforces.

    Alaris enforces duration limits as rate limits computed from the entry's *diluent volume*
    (reference §5 pitfall 8): a 30-minute minimum on 50 mL is a 100 mL/h maximum, whatever VTBI
    was programmed. The minimum duration becomes the maximum rate and vice versa.
    """
    return intermittent_rate(diluent_ml, duration_min)


def rate_step(rate_ml_h: Decimal) -> Decimal:
    """The resolution a reported rate was given in: ``15.4`` -> ``0.1``, ``15.40`` -> ``0.01``.

    A pump reporting ``15`` is taken at its word (step 1); drivers that know a model's real
    resolution pass it instead.
    """
    exponent = rate_ml_h.as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite rate: {rate_ml_h}")
    return Decimal(1).scaleb(min(exponent, 0))


def dose_tolerance(
    step_ml_h: Decimal,
    unit: DoseUnit,
    *,
    concentration: Decimal | None = None,
    concentration_unit: ConcentrationUnit | None = None,
    weight_kg: Decimal | None = None,
    bsa_m2: Decimal | None = None,
) -> Decimal:
    """The dose one rate step is worth: the allowance for a dose back-calculated from a rate."""
    return dose_from_rate(
        step_ml_h,
        unit,
        concentration=concentration,
        concentration_unit=concentration_unit,
        weight_kg=weight_kg,
        bsa_m2=bsa_m2,
    )


def round_rate(rate_ml_h: Decimal, step_ml_h: Decimal) -> Decimal:
    """Round a rate to a pump's step, half-even (what a pump displaying ``step`` does, at best)."""
    with localcontext(DOSE_CONTEXT):
        return (rate_ml_h / step_ml_h).to_integral_value(rounding=ROUND_HALF_EVEN) * step_ml_h
