"""Limit comparison and unit conversion for the checker: pure functions over decimals.

``compare`` applies the limits hard before soft, each with the tolerance a rate-derived dose
is allowed (gateway.druglib.dose); ``duration_rate_limits`` turns intermittent duration limits
into the rate limits pumps actually enforce (reference drug-library.md §5 pitfall 8).
"""

from __future__ import annotations

from decimal import Decimal, localcontext

from gateway.druglib.dose import DOSE_CONTEXT
from gateway.druglib.errors import UnitError
from gateway.druglib.model import LimitSet
from gateway.druglib.units import PER_HOUR, DoseUnit, check_same_family
from gateway.druglib.verdicts import VerdictKind


def fmt(value: Decimal) -> str:
    """A decimal for people: no exponent, at most 4 decimals."""
    text = format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    if "." in text and len(text.split(".")[1]) > 4:
        text = format(value.quantize(Decimal("0.0001")).normalize(), "f")
    return text


def convert_for_entry(
    value: Decimal, source: DoseUnit, target: DoseUnit, weight_kg: Decimal | None, bsa_m2: Decimal | None
) -> Decimal:
    """A reported dose in the entry's unit: same family; per-kg/time differences need the patient.

    ``ug/min`` -> ``ug/kg/min`` divides by the weight; ``[iU]/h`` -> ``m[iU]/min`` scales the
    amount and the time base. Total doses and rates never convert into each other.
    """
    check_same_family(source.amount, target.amount)
    if source.same_shape(target):
        with localcontext(DOSE_CONTEXT):
            return value * source.amount.factor / target.amount.factor
    if (source.time is None) != (target.time is None):
        raise UnitError(source.ucum, f"cannot compare a total dose with a rate ({target.ucum})")

    def per_patient(u: DoseUnit) -> Decimal:
        if u.per_kg:
            if weight_kg is None:
                raise ValueError(f"converting {source.ucum} to {target.ucum} needs the patient weight")
            return weight_kg
        if u.per_m2:
            if bsa_m2 is None:
                raise ValueError(f"converting {source.ucum} to {target.ucum} needs the body surface area")
            return bsa_m2
        return Decimal(1)

    one = (Decimal(1), Decimal(1))
    s_mul, s_div = PER_HOUR[source.time] if source.time else one
    t_mul, t_div = PER_HOUR[target.time] if target.time else one
    with localcontext(DOSE_CONTEXT):
        per_hour_base = value * source.amount.factor * per_patient(source) * s_mul / s_div
        return per_hour_base * t_div / (target.amount.factor * per_patient(target) * t_mul)


def duration_rate_limits(diluent_ml: Decimal, durations: LimitSet) -> dict[str, Decimal]:
    """Duration limits (min) as rate limits (mL/h): the shortest duration is the highest rate."""
    swap = {"hard_min": "hard_max", "soft_min": "soft_max", "soft_max": "soft_min", "hard_max": "hard_min"}
    rates = {swap[name]: diluent_ml * 60 / minutes for name, minutes in durations.values().items()}
    return {name: rates[name] for name in ("hard_min", "soft_min", "soft_max", "hard_max") if name in rates}


def compare(value: Decimal, limits: dict[str, Decimal], tolerance: Decimal) -> tuple[VerdictKind, str, Decimal]:
    """The first limit crossed, hard before soft; a value within ``tolerance`` of a limit passes."""
    for name, kind, crossed in (
        ("hard_max", VerdictKind.ABOVE_HARD_MAX, lambda v, lim: v - tolerance > lim),
        ("soft_max", VerdictKind.ABOVE_SOFT_MAX, lambda v, lim: v - tolerance > lim),
        ("hard_min", VerdictKind.BELOW_HARD_MIN, lambda v, lim: v + tolerance < lim),
        ("soft_min", VerdictKind.BELOW_SOFT_MIN, lambda v, lim: v + tolerance < lim),
    ):
        limit = limits.get(name)
        if limit is not None and crossed(value, limit):
            return kind, name, limit
    return VerdictKind.WITHIN_LIMITS, "", Decimal(0)
