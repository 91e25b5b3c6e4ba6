"""Malformed libraries are refused with every problem named by JSON path, line and reason."""

from __future__ import annotations

import copy

import pytest

from gateway.druglib import LibraryInvalid, load_library

DOPAMINE, VANCO, FLUID, HEPARIN = 5, 13, 12, 0


def setp(path: str, value):
    """An edit that sets ``entries.5.dose_limits.hard_max``-style paths (``-`` deletes)."""

    def edit(data: dict) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = data
        for p in parents:
            node = node[p]
        if value == "-":
            del node[last]
        else:
            node[last] = value

    return edit


def both(*edits):
    def edit(data):
        for e in edits:
            e(data)

    return edit


def dup_entry(index: int, new_id: str | None):
    def edit(data):
        clone = copy.deepcopy(data["entries"][index])
        if new_id:
            clone["id"] = new_id
        data["entries"].append(clone)

    return edit


CUSTOM = {
    "custom": True,
    "amount_unit": "mg",
    "volume_ml": 250,
    "limits_unit": "mg/mL",
    "limits": {"soft_min": 1, "soft_max": 4},
}

# (case id, edit or raw text, expected path, expected message fragment)
CASES = [
    ("not-json", "{", "(file)", "JSON syntax error"),
    ("nan-constant", '{"format": NaN}', "(file)", "not a number"),
    ("top-level-array", "[]", "(top level)", "dictionary"),
    ("wrong-format", setp("format", "pumpgw-drug-library/2"), "format", "pumpgw-drug-library/1"),
    ("missing-version", setp("version", "-"), "version", "required key is missing"),
    ("misspelt-key", setp("verison", "1"), "verison", "unknown key"),
    ("bad-release-date", setp("released", "2024-13-01"), "released", "date"),
    ("unknown-status", setp("status", "final"), "status", "'draft', 'approved' or 'released'"),
    ("no-care-areas", setp("care_areas", []), "care_areas", "at least 1"),
    ("duplicate-care-area", lambda d: d["care_areas"].append({"id": "icu"}), "care_areas[3].id", "already used"),
    (
        "alias-collides",
        setp("care_areas.1.aliases", ["MED-SUR", "Med Surg", "crit care"]),
        "care_areas[1].aliases[2]",
        "already used",
    ),
    (
        "weight-soft-order",
        setp("care_areas.0.weight_kg.soft_min", 300),
        "care_areas[0].weight_kg",
        "soft_min 300 is above soft_max 200",
    ),
    ("weight-zero", setp("care_areas.0.weight_kg.soft_min", 0), "care_areas[0].weight_kg", "never 0"),
    ("negative-max-rate", setp("care_areas.0.max_rate_ml_h", -5), "care_areas[0].max_rate_ml_h", "greater than 0"),
    (
        "hard-max-zero-is-not-unset",
        setp(f"entries.{DOPAMINE}.dose_limits.hard_max", 0),
        f"entries[{DOPAMINE}].dose_limits",
        "never 0",
    ),
    (
        "soft-max-above-hard-max",
        setp(f"entries.{DOPAMINE}.dose_limits.soft_max", 40),
        f"entries[{DOPAMINE}].dose_limits",
        "soft_max 40 is above hard_max 30",
    ),
    (
        "hard-min-above-soft-min",
        setp(f"entries.{DOPAMINE}.dose_limits.hard_min", 2),
        f"entries[{DOPAMINE}].dose_limits",
        "hard_min 2 is above soft_min 0.9",
    ),
    (
        "no-minimum",
        setp(f"entries.{DOPAMINE}.dose_limits", {"soft_max": 20}),
        f"entries[{DOPAMINE}].dose_limits",
        "at least one minimum and one maximum",
    ),
    (
        "no-dose-limits",
        setp(f"entries.{DOPAMINE}.dose_limits", "-"),
        f"entries[{DOPAMINE}].dose_limits",
        "dose limits are required",
    ),
    (
        "unknown-time-base",
        setp(f"entries.{DOPAMINE}.dose_unit", "mcg/kg/fortnight"),
        f"entries[{DOPAMINE}].dose_unit",
        "unexpected 'fortnight'",
    ),
    (
        "unknown-amount-unit",
        setp(f"entries.{DOPAMINE}.dose_unit", "grains/h"),
        f"entries[{DOPAMINE}].dose_unit",
        "unknown amount unit",
    ),
    (
        "dose-and-concentration-families-differ",
        setp(f"entries.{DOPAMINE}.dose_unit", "[iU]/kg/min"),
        f"entries[{DOPAMINE}].concentration.amount_unit",
        "different unit families",
    ),
    (
        "continuous-without-time-base",
        setp(f"entries.{DOPAMINE}.dose_unit", "ug/kg"),
        f"entries[{DOPAMINE}].dose_unit",
        "needs a time base",
    ),
    (
        "intermittent-with-time-base",
        setp(f"entries.{VANCO}.dose_unit", "mg/h"),
        f"entries[{VANCO}].dose_unit",
        "total amount without a time base",
    ),
    (
        "intermittent-without-durations",
        setp(f"entries.{VANCO}.duration_limits_min", "-"),
        f"entries[{VANCO}].duration_limits_min",
        "duration limits are required",
    ),
    ("fluid-with-amount-unit", setp(f"entries.{FLUID}.dose_unit", "meq/h"), f"entries[{FLUID}].dose_unit", "rate only"),
    (
        "fluid-without-rate-limits",
        setp(f"entries.{FLUID}.rate_limits_ml_h", "-"),
        f"entries[{FLUID}].rate_limits_ml_h",
        "required",
    ),
    (
        "unknown-care-area-reference",
        setp(f"entries.{HEPARIN}.care_areas", ["ICU", "NICU"]),
        f"entries[{HEPARIN}].care_areas[1]",
        "unknown care area 'NICU'",
    ),
    ("duplicate-entry-id", setp("entries.1.id", "heparin-vte"), "entries[1].id", "duplicate entry id"),
    (
        "duplicate-entry-key",
        dup_entry(DOPAMINE, "dopamine-again"),
        "entries[17]",
        "same drug, therapy, concentration and dose unit",
    ),
    (
        "fixed-concentration-without-volume",
        setp(f"entries.{DOPAMINE}.concentration.volume_ml", "-"),
        f"entries[{DOPAMINE}].concentration",
        "needs 'amount' and 'volume_ml'",
    ),
    (
        "custom-without-hard-min",
        setp(f"entries.{DOPAMINE}.concentration", CUSTOM),
        f"entries[{DOPAMINE}].concentration.limits.hard_min",
        "hard minimum",
    ),
    (
        "custom-with-fixed-amount",
        setp(f"entries.{DOPAMINE}.concentration", {**CUSTOM, "amount": 400}),
        f"entries[{DOPAMINE}].concentration",
        "no fixed amount",
    ),
    (
        "custom-limits-in-other-family",
        setp(
            f"entries.{DOPAMINE}.concentration",
            {**CUSTOM, "limits_unit": "meq/mL", "limits": {"hard_min": 1, "soft_max": 4}},
        ),
        f"entries[{DOPAMINE}].concentration.limits_unit",
        "not in the family",
    ),
    (
        "limits-on-fixed-concentration",
        setp(f"entries.{DOPAMINE}.concentration.limits", {"hard_min": 1, "soft_max": 2}),
        f"entries[{DOPAMINE}].concentration",
        "custom concentrations only",
    ),
    (
        "unsourced-names-unset-limit",
        setp(f"entries.{HEPARIN}.dose_limits.unsourced", ["hard_max"]),
        f"entries[{HEPARIN}].dose_limits",
        "unsourced lists hard_max",
    ),
    (
        "bolus-unit-without-limits",
        setp(f"entries.{HEPARIN}.bolus_limits", "-"),
        f"entries[{HEPARIN}].bolus_limits",
        "go together",
    ),
    (
        "bolus-unit-with-time-base",
        setp(f"entries.{HEPARIN}.bolus_unit", "[iU]/kg/h"),
        f"entries[{HEPARIN}].bolus_unit",
        "without a time base",
    ),
    (
        "bolus-rate-without-time-base",
        setp(f"entries.{HEPARIN}.bolus_rate_unit", "[iU]/kg"),
        f"entries[{HEPARIN}].bolus_rate_unit",
        "needs a time base",
    ),
    (
        "bolus-in-other-family",
        setp(f"entries.{HEPARIN}.bolus_unit", "mg/kg"),
        f"entries[{HEPARIN}].bolus_unit",
        "different unit families",
    ),
    (
        "initial-dose-above-hard-max",
        setp(f"entries.{DOPAMINE}.initial_dose", 31),
        f"entries[{DOPAMINE}].initial_dose",
        "outside the hard limits",
    ),
    (
        "limit-is-a-word",
        setp(f"entries.{DOPAMINE}.dose_limits.soft_max", "twenty"),
        f"entries[{DOPAMINE}].dose_limits.soft_max",
        "decimal",
    ),
    (
        "limit-is-infinite",
        setp(f"entries.{DOPAMINE}.dose_limits.hard_max", "Infinity"),
        f"entries[{DOPAMINE}].dose_limits.hard_max",
        "finite",
    ),
    (
        "amount-unit-is-a-volume",
        setp(f"entries.{DOPAMINE}.concentration.amount_unit", "mL"),
        f"entries[{DOPAMINE}].concentration.amount_unit",
        "cannot be a volume",
    ),
    ("unknown-entry-kind", setp(f"entries.{DOPAMINE}.kind", "bolus"), f"entries[{DOPAMINE}].kind", "'continuous'"),
    (
        "rate-limits-on-a-dose-entry",
        setp(f"entries.{DOPAMINE}.rate_limits_ml_h", {"soft_min": 1, "soft_max": 10}),
        f"entries[{DOPAMINE}].rate_limits_ml_h",
        "limit the dose instead",
    ),
    ("empty-drug-name", setp(f"entries.{DOPAMINE}.drug", ""), f"entries[{DOPAMINE}].drug", "at least 1 character"),
    (
        "zero-concentration-amount",
        setp(f"entries.{DOPAMINE}.concentration.amount", 0),
        f"entries[{DOPAMINE}].concentration.amount",
        "greater than 0",
    ),
    (
        "entry-in-no-care-area",
        setp(f"entries.{DOPAMINE}.care_areas", []),
        f"entries[{DOPAMINE}].care_areas",
        "at least 1",
    ),
    (
        "duration-on-continuous",
        setp(f"entries.{DOPAMINE}.duration_limits_min", {"hard_min": 10, "soft_max": 60}),
        f"entries[{DOPAMINE}].duration_limits_min",
        "intermittent entries only",
    ),
]


@pytest.mark.parametrize(("edit", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_library_is_refused_naming_path_line_and_reason(write_library, edit, path, fragment):
    file = write_library(text=edit) if isinstance(edit, str) else write_library(edit)
    with pytest.raises(LibraryInvalid) as caught:
        load_library(file)
    problems = caught.value.problems
    matching = [p for p in problems if p.json_path == path and fragment in p.message]
    assert matching, f"expected {path}: ...{fragment}... in {[str(p) for p in problems]}"
    if path not in ("(file)", "(top level)"):
        assert matching[0].line is not None
    assert str(file) in str(caught.value)


def test_there_are_at_least_thirty_malformed_cases():
    assert len(CASES) >= 30


def test_the_line_reported_is_the_line_of_the_offending_value(write_library):
    file = write_library(setp(f"entries.{DOPAMINE}.dose_limits.soft_max", "twenty"))
    with pytest.raises(LibraryInvalid) as caught:
        load_library(file)
    (problem,) = caught.value.problems
    assert '"soft_max": "twenty"' in file.read_text().splitlines()[problem.line - 1]


def test_all_problems_are_reported_at_once(write_library):
    file = write_library(
        both(
            setp("entries.1.id", "heparin-vte"),
            setp(f"entries.{HEPARIN}.care_areas", ["NICU"]),
            setp(f"entries.{VANCO}.duration_limits_min", "-"),
        )
    )
    with pytest.raises(LibraryInvalid) as caught:
        load_library(file)
    assert {p.json_path for p in caught.value.problems} >= {
        "entries[1].id",
        f"entries[{HEPARIN}].care_areas[0]",
        f"entries[{VANCO}].duration_limits_min",
    }


def test_a_draft_library_loads_for_review_but_is_not_put_in_force(write_library):
    file = write_library(setp("status", "draft"))
    assert load_library(file).library.status == "draft"
    with pytest.raises(LibraryInvalid, match="only a released library is put in force"):
        load_library(file, require_released=True)
