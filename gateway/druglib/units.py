"""Units of dose, concentration, rate and weight, and conversion within one family.

A unit is parsed once into a structure (amount unit, per-kg / per-m², time base) so that the
dose engine never does string surgery. Spellings are UCUM (``ug/kg/min``, ``[iU]/h``,
``meq``); the spellings pumps and spreadsheets use (``mcg``, ``units``, ``mEq``, ``milliunits``)
are accepted as aliases and normalised.

Families (reference drug-library.md §3.2): mass (ng, ug, mg, g), units (m[iU], [iU]),
milliequivalents, millimoles, volume (mL, L). Factors exist only inside a family; mEq/mmol do
not convert to mass without a drug-specific factor, so a cross-family conversion raises
:class:`UnitFamilyMismatch`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from gateway.druglib.errors import UnitError, UnitFamilyMismatch


class Family(enum.StrEnum):
    MASS = "mass"
    UNITS = "units"
    MEQ = "meq"
    MMOL = "mmol"
    VOLUME = "volume"


@dataclass(frozen=True, slots=True)
class AmountUnit:
    """An amount unit: its UCUM spelling, family and factor to the family's base unit."""

    ucum: str
    family: Family
    factor: Decimal  # base units per one of this unit (mass base mg, units base [iU], volume base mL)


_AMOUNTS: dict[str, AmountUnit] = {}


def _amount(ucum: str, family: Family, factor: str, *aliases: str) -> None:
    unit = AmountUnit(ucum, family, Decimal(factor))
    for name in (ucum, *aliases):
        _AMOUNTS[name.lower()] = unit


_amount("ng", Family.MASS, "0.000001", "nanogram", "nanograms")
_amount("ug", Family.MASS, "0.001", "mcg", "microgram", "micrograms", "µg")
_amount("mg", Family.MASS, "1", "milligram", "milligrams")
_amount("g", Family.MASS, "1000", "gram", "grams", "gm")
_amount("m[iU]", Family.UNITS, "0.001", "mU", "milliunit", "milliunits", "munits", "m[IU]")
_amount("[iU]", Family.UNITS, "1", "U", "unit", "units", "[IU]", "IU")
_amount("meq", Family.MEQ, "1", "mEq")
_amount("mmol", Family.MMOL, "1")
_amount("mL", Family.VOLUME, "1", "ml", "milliliter", "millilitre")
_amount("L", Family.VOLUME, "1000", "l", "liter", "litre")

_TIME_ALIASES = {"min": "min", "minute": "min", "h": "h", "hr": "h", "hour": "h", "d": "d", "day": "d"}
# Per hour = value x numerator / denominator (reference §3.1: /min x60, /h x1, /day /24), as
# exact integers: the engine multiplies by 60 or divides by 24, never by a rounded 1/60.
PER_HOUR: dict[str, tuple[Decimal, Decimal]] = {
    "min": (Decimal(60), Decimal(1)),
    "h": (Decimal(1), Decimal(1)),
    "d": (Decimal(1), Decimal(24)),
}

# Weight units: 1 lb = 0.45359237 kg exactly (reference [R48]).
WEIGHT_KG: dict[str, Decimal] = {"kg": Decimal(1), "g": Decimal("0.001"), "[lb_av]": Decimal("0.45359237")}
_WEIGHT_ALIASES = {"kg": "kg", "g": "g", "[lb_av]": "[lb_av]", "lb": "[lb_av]", "lbs": "[lb_av]"}


def amount_unit(text: str) -> AmountUnit:
    try:
        return _AMOUNTS[text.strip().lower()]
    except KeyError:
        raise UnitError(text, "unknown amount unit (expected e.g. ng, ug, mg, g, [iU], m[iU], meq, mmol, mL)") from None


@dataclass(frozen=True, slots=True)
class DoseUnit:
    """A dose unit: ``amount[/kg|/m2][/min|/h|/d]``.

    ``time`` is ``None`` for a total (bolus, intermittent) dose; ``amount.family`` is VOLUME for
    rate-only entries (``mL/h``).
    """

    amount: AmountUnit
    per_kg: bool = False
    per_m2: bool = False
    time: str | None = None

    @property
    def ucum(self) -> str:
        parts = [self.amount.ucum]
        if self.per_kg:
            parts.append("kg")
        if self.per_m2:
            parts.append("m2")
        if self.time:
            parts.append(self.time)
        return "/".join(parts)

    @property
    def family(self) -> Family:
        return self.amount.family

    def same_shape(self, other: DoseUnit) -> bool:
        """Same per-kg/per-m² and time base: only the amount scale may differ."""
        return (self.per_kg, self.per_m2, self.time) == (other.per_kg, other.per_m2, other.time)

    def __str__(self) -> str:
        return self.ucum


@lru_cache(maxsize=512)
def dose_unit(text: str) -> DoseUnit:
    """Parse ``ug/kg/min``, ``units/h``, ``mg``, ``mg/m2``, ``mL/h`` ..."""
    parts = [p.strip() for p in text.split("/")]
    if not parts or not parts[0]:
        raise UnitError(text, "empty unit")
    amount = amount_unit(parts[0])
    per_kg = per_m2 = False
    time: str | None = None
    for part in parts[1:]:
        low = part.lower()
        if low == "kg" and not per_kg and not per_m2 and time is None:
            per_kg = True
        elif low in ("m2", "m^2", "m²") and not per_kg and not per_m2 and time is None:
            per_m2 = True
        elif low in _TIME_ALIASES and time is None:
            time = _TIME_ALIASES[low]
        else:
            raise UnitError(text, f"unexpected {part!r} (expected amount[/kg|/m2][/min|/h|/d])")
    return DoseUnit(amount, per_kg, per_m2, time)


@dataclass(frozen=True, slots=True)
class ConcentrationUnit:
    """``amount/volume``, e.g. ``mg/mL``, ``meq/L``."""

    amount: AmountUnit
    volume: AmountUnit

    @property
    def ucum(self) -> str:
        return f"{self.amount.ucum}/{self.volume.ucum}"


@lru_cache(maxsize=128)
def concentration_unit(text: str) -> ConcentrationUnit:
    parts = [p.strip() for p in text.split("/")]
    if len(parts) != 2:
        raise UnitError(text, "expected amount/volume, e.g. mg/mL")
    amount, volume = amount_unit(parts[0]), amount_unit(parts[1])
    if volume.family is not Family.VOLUME:
        raise UnitError(text, f"the denominator {parts[1]!r} is not a volume")
    if amount.family is Family.VOLUME:
        raise UnitError(text, "a concentration's amount cannot be a volume")
    return ConcentrationUnit(amount, volume)


def weight_to_kg(value: Decimal, unit: str) -> Decimal:
    key = _WEIGHT_ALIASES.get(unit.strip().lower())
    if key is None:
        raise UnitError(unit, "unknown weight unit (expected kg, g or [lb_av])")
    return value * WEIGHT_KG[key]


def check_same_family(a: AmountUnit, b: AmountUnit) -> None:
    if a.family is not b.family:
        raise UnitFamilyMismatch(a.ucum, b.ucum)


def amount_factor(from_unit: AmountUnit, to_unit: AmountUnit) -> Decimal:
    """Multiply a value in ``from_unit`` by this to get ``to_unit`` (same family only)."""
    check_same_family(from_unit, to_unit)
    return from_unit.factor / to_unit.factor


def convert_dose(value: Decimal, from_unit: DoseUnit, to_unit: DoseUnit) -> Decimal:
    """Convert between dose units of the same family and shape (ug/kg/min -> mg/kg/min)."""
    check_same_family(from_unit.amount, to_unit.amount)
    if not from_unit.same_shape(to_unit):
        raise UnitError(from_unit.ucum, f"cannot convert to {to_unit.ucum}: per-kg, per-m2 or time base differ")
    return value * from_unit.amount.factor / to_unit.amount.factor


def concentration_per_ml(value: Decimal, unit: ConcentrationUnit, amount: AmountUnit) -> Decimal:
    """A concentration as ``amount`` per mL (``1.6 mg/mL`` -> ``1600`` for ``ug``)."""
    return value * amount_factor(unit.amount, amount) / unit.volume.factor
