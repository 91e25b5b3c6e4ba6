"""Whole-library rules, each problem reported with its JSON path (all at once, not the first).

The pydantic models check types and each limit set's order; this pass checks what needs the
context: units that parse and belong to the concentration's family, the limits each entry kind
requires (Alaris: "You must set at least one minimum limit and one maximum limit", reference
§1.2), hard minimums on custom concentrations (§1.2, pitfall 2), care-area references and
duplicate entry keys (drug, therapy, concentration, dose unit per care area; §11.2).
"""

from __future__ import annotations

from decimal import Decimal

from gateway.druglib.errors import UnitError
from gateway.druglib.model import DrugLibrary, Entry, LimitSet
from gateway.druglib.units import Family, amount_unit, concentration_unit, dose_unit


def entry_key(care_area: str, entry: Entry) -> tuple[str, str, str, Decimal | None, str]:
    """What makes an entry unique inside a care area (BD's auto-programming match, §9)."""
    conc: Decimal | None = None
    c = entry.concentration
    if c is not None and not c.custom and c.amount is not None and c.volume_ml is not None:
        try:
            conc = (c.amount * amount_unit(c.amount_unit).factor / c.volume_ml).normalize()
        except UnitError:
            conc = None
    return (care_area.lower(), entry.drug.strip().lower(), entry.therapy.strip().lower(), conc, entry.dose_unit)


def problems_of(library: DrugLibrary) -> list[tuple[str, str]]:
    """(JSON path, message) for every rule the library breaks; empty when it is valid."""
    out: list[tuple[str, str]] = []
    area_names: dict[str, str] = {}
    for i, area in enumerate(library.care_areas):
        for j, name in enumerate([area.id, *area.aliases]):
            key = name.strip().lower()
            path = f"care_areas[{i}]." + ("id" if j == 0 else f"aliases[{j - 1}]")
            if key in area_names:
                out.append((path, f"care area name {name!r} is already used by care area {area_names[key]!r}"))
            else:
                area_names[key] = area.id
    known_areas = {a.id for a in library.care_areas}
    seen_ids: set[str] = set()
    seen_keys: dict[tuple, str] = {}
    for i, entry in enumerate(library.entries):
        base = f"entries[{i}]"
        if entry.id in seen_ids:
            out.append((f"{base}.id", f"duplicate entry id {entry.id!r}"))
        seen_ids.add(entry.id)
        for j, area_id in enumerate(entry.care_areas):
            if area_id not in known_areas:
                out.append(
                    (
                        f"{base}.care_areas[{j}]",
                        f"unknown care area {area_id!r} (known: {', '.join(sorted(known_areas))})",
                    )
                )
            same = entry_key(area_id, entry)
            if same in seen_keys:
                out.append(
                    (
                        base,
                        f"same drug, therapy, concentration and dose unit as entry {seen_keys[same]!r} "
                        f"in care area {area_id!r}",
                    )
                )
            seen_keys.setdefault(same, entry.id)
        if len(set(entry.care_areas)) != len(entry.care_areas):
            out.append((f"{base}.care_areas", "a care area is listed twice"))
        out.extend(_entry_problems(base, entry))
    return out


def _need(out: list, path: str, limits: LimitSet | None, what: str) -> None:
    if limits is None:
        out.append((path, f"{what} are required"))
    elif not (limits.has_min() and limits.has_max()):
        out.append(
            (
                path,
                f"{what} need at least one minimum and one maximum (Alaris rule; set soft_min or hard_min, and soft_max or hard_max)",
            )
        )


def _entry_problems(base: str, e: Entry) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    try:
        unit = dose_unit(e.dose_unit)
    except UnitError as exc:
        return [(f"{base}.dose_unit", exc.reason)]
    rate_only = unit.family is Family.VOLUME
    if rate_only and unit.ucum != "mL/h":
        out.append((f"{base}.dose_unit", f"a volume dose unit must be mL/h (got {e.dose_unit!r})"))
    if e.kind == "fluid" and not rate_only:
        out.append((f"{base}.dose_unit", f"a fluid entry is rate only: dose_unit must be mL/h (got {e.dose_unit!r})"))
    if rate_only:
        if e.dose_limits is not None:
            out.append((f"{base}.dose_limits", "a rate-only entry has rate_limits_ml_h, not dose_limits"))
        if e.kind == "fluid":
            _need(out, f"{base}.rate_limits_ml_h", e.rate_limits_ml_h, "rate limits of a fluid")
        if e.kind in ("intermittent", "pca"):
            out.append((f"{base}.dose_unit", f"a {e.kind} entry needs an amount dose unit, not mL/h"))
    else:
        if e.rate_limits_ml_h is not None:
            out.append(
                (
                    f"{base}.rate_limits_ml_h",
                    "rate limits belong to fluid or rate-only (mL/h) entries; limit the dose instead",
                )
            )
        _need(out, f"{base}.dose_limits", e.dose_limits, "dose limits")
        if e.kind == "continuous" and unit.time is None:
            out.append(
                (f"{base}.dose_unit", f"a continuous dose needs a time base, e.g. {unit.ucum}/h (got {e.dose_unit!r})")
            )
        if e.kind in ("intermittent", "pca") and unit.time is not None:
            out.append(
                (f"{base}.dose_unit", f"an {e.kind} dose is a total amount without a time base (got {e.dose_unit!r})")
            )
        if e.concentration is None:
            out.append((f"{base}.concentration", "required unless the entry is rate only (dose_unit mL/h)"))
    if e.kind == "intermittent":
        _need(out, f"{base}.duration_limits_min", e.duration_limits_min, "duration limits")
        if e.concentration is not None and e.concentration.volume_ml is None:
            out.append(
                (
                    f"{base}.concentration.volume_ml",
                    "an intermittent entry needs the diluent volume (duration limits are enforced as rates from it)",
                )
            )
    elif e.duration_limits_min is not None:
        out.append((f"{base}.duration_limits_min", "duration limits apply to intermittent entries only"))
    if e.concentration is not None:
        out.extend(_concentration_problems(f"{base}.concentration", e, unit))
    if e.initial_dose is not None and e.dose_limits is not None:
        lim = e.dose_limits
        if (lim.hard_max is not None and e.initial_dose > lim.hard_max) or (
            lim.hard_min is not None and e.initial_dose < lim.hard_min
        ):
            out.append((f"{base}.initial_dose", f"initial dose {e.initial_dose} is outside the hard limits"))
    for field, limits_field, timed in (
        ("bolus_unit", "bolus_limits", False),
        ("loading_unit", "loading_limits", False),
        ("bolus_rate_unit", "bolus_rate_limits", True),
    ):
        out.extend(_side_unit(base, e, unit, field, limits_field, timed))
    return out


def _concentration_problems(path: str, e: Entry, unit) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    c = e.concentration
    assert c is not None
    try:
        amount = amount_unit(c.amount_unit)
    except UnitError as exc:
        return [(f"{path}.amount_unit", exc.reason)]
    if amount.family is Family.VOLUME:
        out.append((f"{path}.amount_unit", f"a drug amount cannot be a volume (got {c.amount_unit!r})"))
    elif unit.family is not Family.VOLUME and amount.family is not unit.family:
        out.append(
            (
                f"{path}.amount_unit",
                f"{c.amount_unit!r} ({amount.family}) and dose unit {e.dose_unit!r} ({unit.family}) are different unit families",
            )
        )
    if c.custom and c.limits is not None and c.limits_unit is not None:
        try:
            cu = concentration_unit(c.limits_unit)
            if cu.amount.family is not amount.family:
                out.append((f"{path}.limits_unit", f"{c.limits_unit!r} is not in the family of {c.amount_unit!r}"))
        except UnitError as exc:
            out.append((f"{path}.limits_unit", exc.reason))
        if c.limits.hard_min is None:
            out.append(
                (
                    f"{path}.limits.hard_min",
                    "a custom concentration's limits need a hard minimum (a too-low programmed concentration over-infuses)",
                )
            )
        if not c.limits.has_max():
            out.append((f"{path}.limits", "a custom concentration's limits need a maximum (soft_max or hard_max)"))
    return out


def _side_unit(base: str, e: Entry, unit, field: str, limits_field: str, timed: bool) -> list[tuple[str, str]]:
    text, limits = getattr(e, field), getattr(e, limits_field)
    if (text is None) != (limits is None):
        return [(f"{base}.{field if text is None else limits_field}", f"{field} and {limits_field} go together")]
    if text is None:
        return []
    try:
        side = dose_unit(text)
    except UnitError as exc:
        return [(f"{base}.{field}", exc.reason)]
    out: list[tuple[str, str]] = []
    if side.family is not unit.family:
        out.append(
            (
                f"{base}.{field}",
                f"{text!r} ({side.family}) and dose unit {e.dose_unit!r} ({unit.family}) are different unit families",
            )
        )
    if timed and side.time is None:
        out.append((f"{base}.{field}", f"a bolus rate needs a time base, e.g. {side.ucum}/min"))
    if not timed and side.time is not None:
        out.append((f"{base}.{field}", f"a bolus or loading dose is an amount without a time base (got {text!r})"))
    if not limits.has_max():
        out.append((f"{base}.{limits_field}", "needs a maximum (soft_max or hard_max)"))
    return out
