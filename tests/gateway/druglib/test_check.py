"""Verdicts on programs, against the shipped example library (one test per verdict kind and more)."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.model import ChannelSnapshot, ChannelState, Quantity
from gateway.druglib import ProgramUnderCheck, Severity, VerdictKind, evaluate, load_library, program_from_channel
from gateway.druglib.verdicts import DOSE_ORDER

K = VerdictKind


def q(value: str, unit: str) -> Quantity:
    return Quantity(D(value), unit)


def dopamine(**kw) -> ProgramUnderCheck:
    base = dict(drug="Dopamine", care_area="ICU", concentration=q("1.6", "mg/mL"), patient_weight=q("82", "kg"))
    return ProgramUnderCheck(**{**base, **kw})


def test_dose_within_limits_names_the_dose_compared_and_the_library(example):
    vs = evaluate(example, dopamine(dose_rate=q("5", "ug/kg/min")))
    assert vs.kinds == (K.WITHIN_LIMITS,)
    v = vs.worst
    assert (v.limit_name, v.value, v.entry_id) == ("dose", q("5", "ug/kg/min"), "dopamine-icu")
    assert (v.library_version, v.library_sha256, vs.severity) == (example.version, example.sha256, Severity.OK)


def test_ihe_sample_rate_15_4_ml_h_back_calculates_within_limits_with_a_tolerance(example):
    v = evaluate(example, dopamine(rate=q("15.4", "mL/h"))).worst
    assert v.kind is K.WITHIN_LIMITS and v.value.value.quantize(D("0.001")) == D("5.008")
    assert v.tolerance is not None and v.tolerance.unit == "ug/kg/min"


def test_a_rate_rounded_up_past_a_limit_passes_within_one_rate_step(example):
    # 20 ug/kg/min at 83 kg is 62.25 mL/h; the pump shows 62.3, which back-calculates to 20.016
    assert evaluate(example, dopamine(rate=q("62.3", "mL/h"), patient_weight=q("83", "kg"))).kinds == (K.WITHIN_LIMITS,)
    assert evaluate(example, dopamine(rate=q("62.5", "mL/h"), patient_weight=q("83", "kg"))).kinds == (
        K.ABOVE_SOFT_MAX,
    )


@pytest.mark.parametrize(
    ("dose", "kind", "limit_name", "limit"),
    [
        ("0.5", K.BELOW_SOFT_MIN, "dose.soft_min", "0.9"),
        ("25", K.ABOVE_SOFT_MAX, "dose.soft_max", "20"),
        ("35", K.ABOVE_HARD_MAX, "dose.hard_max", "30"),
    ],
)
def test_dose_outside_a_limit_names_that_limit_and_both_values(example, dose, kind, limit_name, limit):
    v = evaluate(example, dopamine(dose_rate=q(dose, "ug/kg/min"))).worst
    assert (v.kind, v.limit_name, v.value, v.limit) == (kind, limit_name, q(dose, "ug/kg/min"), q(limit, "ug/kg/min"))
    assert dose in v.text and limit in v.text


def test_a_custom_concentration_below_its_hard_minimum_is_below_hard_min(write_library):
    def add_hydromorphone(data):
        data["entries"].append(
            {
                "id": "hydromorphone",
                "drug": "Hydromorphone",
                "care_areas": ["ICU"],
                "dose_unit": "mg/h",
                "concentration": {
                    "custom": True,
                    "amount_unit": "mg",
                    "limits_unit": "mg/mL",
                    "limits": {"hard_min": 0.1, "soft_max": 0.2, "hard_max": 1},
                },
                "dose_limits": {"soft_min": 0.2, "soft_max": 3, "hard_max": 5},
            }
        )

    lib = load_library(write_library(add_hydromorphone))
    prog = ProgramUnderCheck(
        drug="Hydromorphone", care_area="ICU", concentration=q("0.05", "mg/mL"), dose_rate=q("1", "mg/h")
    )
    v = evaluate(lib, prog).worst
    assert (v.kind, v.limit_name, v.limit, v.severity) == (
        K.BELOW_HARD_MIN,
        "concentration.hard_min",
        q("0.1", "mg/mL"),
        Severity.CRITICAL,
    )


def test_a_drug_missing_from_the_care_area_says_where_it_is_listed(example):
    vs = evaluate(example, ProgramUnderCheck(drug="norepinephrine", care_area="OB", rate=q("10", "mL/h")))
    assert vs.worst.kind is K.DRUG_NOT_IN_LIBRARY and "ICU" in vs.worst.text


def test_a_basic_infusion_without_drug_is_outside_the_library(example):
    vs = evaluate(example, ProgramUnderCheck(drug=None, care_area="ICU", rate=q("100", "mL/h")))
    assert K.DRUG_NOT_IN_LIBRARY in vs.kinds and "basic infusion" in vs.worst.text


def test_pca_entries_allow_no_dose_check(example):
    vs = evaluate(example, ProgramUnderCheck(drug="Morphine", care_area="MED-SURG", rate=q("1", "mL/h")))
    assert vs.kinds == (K.NO_DOSE_CHECK_POSSIBLE,) and vs.severity is Severity.INFO


def test_a_concentration_matching_no_entry_is_reported_with_the_library_concentrations(example):
    v = evaluate(example, dopamine(concentration=q("3.2", "mg/mL"), dose_rate=q("5", "ug/kg/min"))).worst
    assert v.kind is K.NO_DOSE_CHECK_POSSIBLE and v.severity is Severity.WARNING and "1.6 mg/mL" in v.text


def test_a_concentration_in_another_scale_of_the_same_family_matches(example):
    assert evaluate(example, dopamine(concentration=q("1600", "ug/mL"), dose_rate=q("5", "mcg/kg/min"))).kinds == (
        K.WITHIN_LIMITS,
    )


def test_a_dose_reported_in_another_unit_family_is_not_compared(example):
    vs = evaluate(example, dopamine(dose_rate=q("5", "[iU]/kg/min")))
    assert vs.kinds == (K.NO_DOSE_CHECK_POSSIBLE,) and "does not match" in vs.worst.text


def test_unknown_care_area_stops_the_check(example):
    vs = evaluate(example, dopamine(care_area="NICU", dose_rate=q("5", "ug/kg/min")))
    assert vs.kinds == (K.CARE_AREA_UNKNOWN,) and "NICU" in vs.worst.text


def test_missing_weight_for_a_per_kg_rate_reports_weight_missing_and_no_dose(example):
    vs = evaluate(example, dopamine(rate=q("15.4", "mL/h"), patient_weight=None))
    assert K.WEIGHT_MISSING in vs.kinds and K.NO_DOSE_CHECK_POSSIBLE in vs.kinds and K.WITHIN_LIMITS not in vs.kinds


@pytest.mark.parametrize(
    ("weight", "severity", "limit_name"),
    [
        ("600", Severity.CRITICAL, "weight_kg.hard_max"),
        ("20", Severity.WARNING, "weight_kg.soft_min"),
    ],
)
def test_weight_outside_the_care_area_limits(example, weight, severity, limit_name):
    vs = evaluate(example, dopamine(patient_weight=q(weight, "kg"), dose_rate=q("5", "ug/kg/min")))
    (v,) = [v for v in vs if v.kind is K.WEIGHT_OUTSIDE_LIMITS]
    assert (v.severity, v.limit_name) == (severity, limit_name)


def test_weight_2_2_times_the_expected_weight_is_suspected_pounds(example):
    vs = evaluate(
        example, dopamine(patient_weight=q("176", "kg"), expected_weight=q("80", "kg"), dose_rate=q("5", "ug/kg/min"))
    )
    (v,) = [v for v in vs if v.kind is K.WEIGHT_SUSPICIOUS]
    assert v.severity is Severity.CRITICAL and "pounds" in v.text


def test_a_weight_20_percent_off_is_a_mismatch_warning_not_a_pound_error(example):
    vs = evaluate(
        example, dopamine(patient_weight=q("96", "kg"), expected_weight=q("80", "kg"), dose_rate=q("5", "ug/kg/min"))
    )
    (v,) = [v for v in vs if v.kind is K.WEIGHT_SUSPICIOUS]
    assert v.severity is Severity.WARNING and "pounds" not in v.text


def test_outdated_library_and_a_soft_limit_are_reported_together(example):
    vs = evaluate(example, dopamine(pump_library_version="example-2023.9", dose_rate=q("25", "ug/kg/min")))
    assert vs.kinds == (K.LIBRARY_OUTDATED, K.ABOVE_SOFT_MAX)
    assert evaluate(example, dopamine(pump_library_version="EXAMPLE.2024.v1", dose_rate=q("5", "ug/kg/min"))).kinds == (
        K.WITHIN_LIMITS,
    )


def test_a_fluid_faster_than_the_care_area_allows_breaks_both_limits(example):
    vs = evaluate(example, ProgramUnderCheck(drug="D5 1/2NS + KCl 20", care_area="Med Surg", rate=q("1000", "mL/h")))
    assert {v.limit_name for v in vs} == {"care_area.max_rate_ml_h", "rate.hard_max"}


def test_intermittent_duration_limits_are_enforced_as_rates_from_the_diluent_volume(example):
    fast = ProgramUnderCheck(
        drug="Vancomycin", care_area="ICU", concentration=q("5", "mg/mL"), rate=q("400", "mL/h"), vtbi=q("200", "mL")
    )
    v = evaluate(example, fast).worst
    assert (v.kind, v.limit_name, v.limit) == (K.ABOVE_HARD_MAX, "rate_from_duration.hard_max", q("240", "mL/h"))
    hourly = ProgramUnderCheck(
        drug="Vancomycin", care_area="ICU", concentration=q("5", "mg/mL"), rate=q("200", "mL/h"), vtbi=q("200", "mL")
    )
    assert evaluate(example, hourly).kinds == (K.WITHIN_LIMITS,)


def test_intermittent_total_dose_comes_from_the_programmed_volume(example):
    prog = ProgramUnderCheck(
        drug="Vancomycin", care_area="ICU", concentration=q("5", "mg/mL"), rate=q("200", "mL/h"), vtbi=q("50", "mL")
    )
    v = evaluate(example, prog).worst
    assert (v.kind, v.value) == (K.BELOW_SOFT_MIN, q("250", "mg"))


def test_a_known_therapy_selects_its_entry(example):
    prog = ProgramUnderCheck(
        drug="heparin",
        care_area="ICU",
        concentration=q("50", "[iU]/mL"),
        dose_rate=q("18", "units/kg/h"),
        patient_weight=q("80", "kg"),
        therapy="Cardiac/PVD",
    )
    assert evaluate(example, prog).worst.entry_id == "heparin-cardiac"


def test_a_dose_in_another_time_base_is_converted_before_comparison(example):
    prog = ProgramUnderCheck(
        drug="Pitocin", care_area="OB", concentration=q("0.06", "[iU]/mL"), dose_rate=q("0.6", "[iU]/h")
    )
    v = evaluate(example, prog).worst
    assert (v.kind, v.value) == (K.WITHIN_LIMITS, q("10", "m[iU]/min"))


def test_verdicts_serialise_to_json_with_exact_decimals(example):
    vs = evaluate(example, dopamine(rate=q("15.4", "mL/h"), pump_library_version="old"))
    data = json.loads(json.dumps(vs.to_dict()))
    assert data["library_sha256"] == example.sha256
    assert [v["kind"] for v in data["verdicts"]] == ["library_outdated", "within_limits"]
    assert data["verdicts"][1]["value"]["value"].startswith("5.008")


def test_program_from_channel_is_none_when_nothing_is_programmed():
    assert (
        program_from_channel(ChannelSnapshot("1", ChannelState.IDLE), care_area="ICU", pump_library_version=None)
        is None
    )
    assert (
        program_from_channel(ChannelSnapshot("1", ChannelState.STOPPED), care_area="ICU", pump_library_version=None)
        is None
    )


def test_program_from_channel_prefers_the_care_area_the_pump_reports(example):
    channel = ChannelSnapshot(
        "1",
        ChannelState.INFUSING,
        rate=q("15.4", "mL/h"),
        drug="Dopamine",
        concentration=q("1.6", "mg/mL"),
        dose_rate=q("5.00", "ug/kg/min"),
        care_area="Crit Care",
        patient_weight=q("82.0", "kg"),
    )
    prog = program_from_channel(channel, care_area="MED-SURG", pump_library_version="DL1")
    assert prog is not None and prog.care_area == "Crit Care"
    assert evaluate(example, prog).kinds == (K.LIBRARY_OUTDATED, K.WITHIN_LIMITS)


ENTRIES = {  # drug, care area, concentration, dose unit, weight
    "dopamine": ("Dopamine", "ICU", q("1.6", "mg/mL"), "ug/kg/min", q("70", "kg")),
    "vasopressin": ("Vasopressin", "ICU", q("0.4", "[iU]/mL"), "[iU]/min", None),
    "fentanyl": ("Fentanyl", "ICU", q("25", "ug/mL"), "ug/h", None),
    "oxytocin": ("Oxytocin", "OB", q("0.06", "[iU]/mL"), "m[iU]/min", None),
    "magnesium": ("Magnesium sulfate", "OB", q("0.04", "g/mL"), "g/h", None),
}
doses = st.decimals(min_value=D("0.00001"), max_value=D("2000"), places=5)


@settings(max_examples=200)
@given(name=st.sampled_from(sorted(ENTRIES)), a=doses, b=doses, by_rate=st.booleans())
def test_verdict_is_monotonic_in_dose(example, name, a, b, by_rate):
    drug, area, conc, unit, weight = ENTRIES[name]
    low, high = sorted((a, b))

    def kind(value: D) -> VerdictKind:
        field = {"rate": Quantity(value, "mL/h")} if by_rate else {"dose_rate": Quantity(value, unit)}
        vs = evaluate(
            example, ProgramUnderCheck(drug=drug, care_area=area, concentration=conc, patient_weight=weight, **field)
        )
        found = vs.dose_kind()
        assert found is not None, vs
        return found

    assert DOSE_ORDER[kind(low)] <= DOSE_ORDER[kind(high)]


@pytest.mark.parametrize("text", ["NaN", "sNaN", "Infinity", "-Infinity", "1E+999999", "1e-999999"])
@pytest.mark.parametrize("field", ["rate", "dose_rate", "patient_weight", "concentration", "vtbi"])
def test_non_finite_or_absurd_numbers_give_no_dose_check_possible_instead_of_raising(example, field, text):
    units = {"rate": "mL/h", "dose_rate": "ug/kg/min", "patient_weight": "kg", "concentration": "mg/mL", "vtbi": "mL"}
    vs = evaluate(example, dopamine(**{field: q(text, units[field])}))
    assert K.NO_DOSE_CHECK_POSSIBLE in vs.kinds
    assert any(v.limit_name == field for v in vs.verdicts)


@settings(max_examples=200)
@given(st.decimals(), st.decimals(), st.decimals())
def test_evaluate_never_raises_for_any_decimal_a_pump_could_report(example, rate, dose, weight):
    evaluate(
        example,
        dopamine(
            rate=Quantity(rate, "mL/h"), dose_rate=Quantity(dose, "ug/kg/min"), patient_weight=Quantity(weight, "kg")
        ),
    )
