"""The drug library as pydantic models: library -> care areas -> entries -> limit sets.

The shape follows what every vendor's library shares (reference drug-library.md §1.1): a
versioned library; care areas with weight and device limits; entries keyed by drug, optional
therapy, one concentration and one dose unit; per parameter up to four limits, each optional.

Numbers are ``Decimal`` (JSON numbers are parsed as decimals, never as binary floats). Units are
UCUM strings parsed by :mod:`gateway.druglib.units`. Structural rules live here (types, limit
order, "0 is not 'not set'"); rules that need the whole library (units against concentration,
care-area references, duplicate keys, Alaris' "at least one minimum and one maximum") live in
:mod:`gateway.druglib.validate` so that every problem is reported at once with its JSON path.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FORMAT = "pumpgw-drug-library/1"
LIMIT_NAMES: tuple[str, ...] = ("hard_min", "soft_min", "soft_max", "hard_max")
LimitName = Literal["hard_min", "soft_min", "soft_max", "hard_max"]
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitSet(_Strict):
    """Up to four limits of one parameter, in the unit the owning field names.

    Absent means "not set" -- never 0: a hard maximum of 0 would make every dose exceed it, and
    the public PCA JSON's "0 = not set" convention (reference §2.4, pitfall 10) is exactly the
    ambiguity this format refuses.
    """

    hard_min: Decimal | None = Field(default=None, description="Cannot be overridden at the pump.")
    soft_min: Decimal | None = Field(default=None, description="Alert; the clinician may override.")
    soft_max: Decimal | None = Field(default=None, description="Alert; the clinician may override.")
    hard_max: Decimal | None = Field(default=None, description="Cannot be overridden at the pump.")
    source: str = Field(default="", description="Where these values come from (citation).")
    unsourced: list[LimitName] = Field(
        default_factory=list, description="Values set without a public source (kept visible on purpose)."
    )

    @model_validator(mode="after")
    def _ordered_and_positive(self) -> LimitSet:
        present = [(name, getattr(self, name)) for name in LIMIT_NAMES if getattr(self, name) is not None]
        for name, value in present:
            if not value.is_finite():
                raise ValueError(f"{name} must be a finite number (got {value})")
            if value <= 0:
                raise ValueError(
                    f"{name} is {value}: limits must be > 0; omit the key (or use null) for 'not set', never 0"
                )
        for (low_name, low), (high_name, high) in zip(present, present[1:]):
            if low > high:
                raise ValueError(
                    f"{low_name} {low} is above {high_name} {high} (order: hard_min <= soft_min <= soft_max <= hard_max)"
                )
        for name in self.unsourced:
            if getattr(self, name) is None:
                raise ValueError(f"unsourced lists {name}, which is not set")
        return self

    def values(self) -> dict[str, Decimal]:
        return {name: getattr(self, name) for name in LIMIT_NAMES if getattr(self, name) is not None}

    def has_min(self) -> bool:
        return self.hard_min is not None or self.soft_min is not None

    def has_max(self) -> bool:
        return self.hard_max is not None or self.soft_max is not None


class Concentration(_Strict):
    """Either fixed (``amount`` ``amount_unit`` in ``volume_ml``) or custom (entered at the pump).

    A custom concentration carries limits in ``limits_unit`` (amount per mL); they should have a
    hard minimum, because a programmed concentration lower than the real one over-infuses
    (reference §1.2, pitfall 2).
    """

    custom: bool = Field(default=False, description="True when the concentration is entered at the pump.")
    amount: Decimal | None = Field(default=None, gt=0, description="Drug amount in the container (fixed only).")
    amount_unit: str = Field(description="UCUM amount unit of the drug, e.g. 'mg', '[iU]', 'meq'.")
    volume_ml: Decimal | None = Field(
        default=None, gt=0, description="Diluent/container volume in mL (fixed; also used for intermittent durations)."
    )
    limits_unit: str | None = Field(default=None, description="Unit of `limits`, amount/mL, e.g. 'mg/mL'.")
    limits: LimitSet | None = Field(default=None, description="Limits on a custom concentration.")
    source: str = ""

    @model_validator(mode="after")
    def _fixed_or_custom(self) -> Concentration:
        if self.custom:
            if self.amount is not None:
                raise ValueError("a custom concentration has no fixed amount (remove 'amount' or set custom=false)")
            if (self.limits is None) != (self.limits_unit is None):
                raise ValueError("'limits' and 'limits_unit' go together")
        else:
            if self.amount is None or self.volume_ml is None:
                raise ValueError("a fixed concentration needs 'amount' and 'volume_ml' (or set custom=true)")
            if self.limits is not None or self.limits_unit is not None:
                raise ValueError("concentration limits apply to custom concentrations only")
        return self


class NamedLimit(_Strict):
    """Further limits shown to users but not checkable from what pumps report (PCA lockout ...)."""

    name: str = Field(min_length=1)
    unit: str = Field(min_length=1)
    limits: LimitSet


class Entry(_Strict):
    """One library line: drug (+ therapy) x concentration x dose unit, in one or more care areas."""

    id: str = Field(pattern=_ID, description="Stable id, unique in the library.")
    drug: str = Field(min_length=1, description="Drug name as pumps report it (matched case-insensitively).")
    therapy: str = Field(default="", description="Indication or weight band that splits one drug into entries.")
    aliases: list[str] = Field(default_factory=list, description="Other names/EHR codes the pump may report.")
    care_areas: list[str] = Field(min_length=1, description="Ids of the care areas this entry is in.")
    kind: Literal["continuous", "intermittent", "fluid", "pca"] = "continuous"
    concentration: Concentration | None = Field(default=None, description="None for rate-only (mL mode) entries.")
    dose_unit: str = Field(description="UCUM dose unit: ug/kg/min, [iU]/h, mg (intermittent), mg/m2, mL/h (rate only).")
    dose_limits: LimitSet | None = None
    initial_dose: Decimal | None = Field(default=None, gt=0)
    rate_limits_ml_h: LimitSet | None = Field(default=None, description="Fluid / rate-only entries: limits in mL/h.")
    duration_limits_min: LimitSet | None = Field(
        default=None, description="Intermittent: infusion duration in minutes."
    )
    bolus_unit: str | None = None
    bolus_limits: LimitSet | None = None
    bolus_rate_unit: str | None = Field(default=None, description="Bolus dose administration rate (BDAR) unit.")
    bolus_rate_limits: LimitSet | None = None
    loading_unit: str | None = None
    loading_limits: LimitSet | None = None
    other_limits: list[NamedLimit] = Field(default_factory=list)
    advisory: str = ""
    note: str = ""


class CareArea(_Strict):
    """A care area (Alaris "profile", Spectrum "care area") with its patient and device limits."""

    id: str = Field(pattern=_ID)
    name: str = ""
    aliases: list[str] = Field(default_factory=list, description="Names pumps report for this care area.")
    weight_kg: LimitSet | None = None
    max_rate_ml_h: Decimal | None = Field(default=None, gt=0)
    max_vtbi_ml: Decimal | None = Field(default=None, gt=0)
    note: str = ""


class DrugLibrary(_Strict):
    """A released drug library file (``config/drug-library.example.json``)."""

    format: Literal["pumpgw-drug-library/1"] = Field(description="File format id; bumps on incompatible change.")
    name: str = Field(min_length=1)
    version: str = Field(min_length=1, description="The version pumps report (MDC_PUMP_DRUG_LIBRARY_VERSION).")
    pump_library_ids: list[str] = Field(
        default_factory=list, description="Other ids under which pumps report this same library version."
    )
    released: date
    status: Literal["draft", "approved", "released"] = Field(
        description="Only 'released' libraries are put in force by the gateway (reference §7.1)."
    )
    care_areas: list[CareArea] = Field(min_length=1)
    entries: list[Entry] = Field(default_factory=list)
    note: str = ""
