"""The dose engine against the reference's worked examples (drug-library.md §4), then properties."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.druglib.dose import (
    dose_from_rate,
    dose_tolerance,
    duration_as_rate,
    intermittent_dose,
    intermittent_rate,
    intermittent_volume,
    rate_from_dose,
    rate_step,
    round_rate,
)
from gateway.druglib.errors import UnitError, UnitFamilyMismatch
from gateway.druglib.units import concentration_unit, convert_dose, dose_unit, weight_to_kg

MG_ML = concentration_unit("mg/mL")
UG_ML = concentration_unit("ug/mL")
IU_ML = concentration_unit("[iU]/mL")


def rate(dose: str, unit: str, conc: str, cunit, weight: str | None = None) -> D:
    return rate_from_dose(
        D(dose),
        dose_unit(unit),
        concentration=D(conc),
        concentration_unit=cunit,
        weight_kg=D(weight) if weight else None,
    )


def test_ihe_dopamine_5_mcg_kg_min_at_82_kg_and_1_6_mg_ml_is_15_375_ml_h():
    assert rate("5", "ug/kg/min", "1.6", MG_ML, "82") == D("15.375")


def test_the_rate_the_pump_reports_15_4_back_calculates_to_5_008_mcg_kg_min():
    dose = dose_from_rate(
        D("15.4"), dose_unit("ug/kg/min"), concentration=D("1600"), concentration_unit=UG_ML, weight_kg=D("82")
    )
    assert dose.quantize(D("0.001")) == D("5.008")


def test_vasopressin_0_04_units_min_at_0_4_units_ml_is_exactly_6_ml_h_unlike_binary_floats():
    assert 0.04 * 60 / 0.4 != 6  # the float trap the reference describes
    assert rate("0.04", "[iU]/min", "0.4", IU_ML) == D(6)


def test_norepinephrine_10_mcg_min_at_16_mcg_ml_is_37_5_ml_h_and_soft_max_80_is_300_ml_h():
    conc = concentration_unit("mg/mL")
    assert rate("10", "mcg/min", "0.016", conc) == D("37.5")
    assert rate("80", "mcg/min", "0.016", conc) == D("300")


def test_propofol_50_mcg_kg_min_at_80_kg_is_24_ml_h_soft_max_26_4_hard_max_48():
    assert rate("50", "ug/kg/min", "10", MG_ML, "80") == D("24")
    assert rate("55", "ug/kg/min", "10", MG_ML, "80") == D("26.4")
    assert rate("100", "ug/kg/min", "10", MG_ML, "80") == D("48")


def test_heparin_18_units_kg_h_at_80_kg_is_28_8_ml_h_and_2000_units_h_is_40_ml_h():
    assert rate("18", "units/kg/h", "50", IU_ML, "80") == D("28.8")
    assert rate("2000", "units/h", "50", IU_ML) == D("40")


def test_magnesium_2_g_h_at_0_04_g_ml_is_50_ml_h_and_hard_max_5_g_h_is_125_ml_h():
    gml = concentration_unit("g/mL")
    assert rate("2", "g/h", "0.04", gml) == D("50")
    assert rate("5", "g/h", "0.04", gml) == D("125")


def test_magnesium_loading_4_g_in_100_ml_over_30_min_is_200_ml_h():
    assert intermittent_rate(D("100"), D("30")) == D("200")


def test_kcl_fluid_limits_500_and_550_ml_h_at_20_meq_l_are_10_and_11_meq_h():
    meq_l = concentration_unit("meq/L")
    unit = dose_unit("meq/h")
    assert dose_from_rate(D("500"), unit, concentration=D("20"), concentration_unit=meq_l) == D("10")
    assert dose_from_rate(D("550"), unit, concentration=D("20"), concentration_unit=meq_l) == D("11")


def test_weight_in_pounds_turns_propofol_24_ml_h_into_52_8_ml_h():
    assert rate("50", "ug/kg/min", "10", MG_ML, "176") == D("52.8")
    assert weight_to_kg(D("176"), "[lb_av]").quantize(D("0.01")) == D("79.83")


def test_fentanyl_vial_sent_for_a_2_9_kg_patient_reads_as_3_448_mcg_kg():
    dose = intermittent_dose(
        D("1"), dose_unit("ug/kg"), concentration=D("10"), concentration_unit=UG_ML, weight_kg=D("2.9")
    )
    assert dose.quantize(D("0.001")) == D("3.448")


def test_ceftriaxone_duration_limits_30_to_60_min_on_50_ml_are_rates_100_and_50_ml_h():
    assert duration_as_rate(D("50"), D("30")) == D("100")
    assert duration_as_rate(D("50"), D("60")) == D("50")
    assert intermittent_rate(D("60"), D("30")) == D("120")  # 60 mL overfill in 30 min trips the alert


def test_per_m2_and_per_day_forms_follow_the_reference_formulas():
    assert intermittent_volume(
        D("100"), dose_unit("mg/m2"), concentration=D("2"), concentration_unit=MG_ML, bsa_m2=D("1.8")
    ) == D("90")
    assert rate("2400", "mg/d", "1", MG_ML) == D("100")
    assert rate_from_dose(
        D("10"), dose_unit("mg/m2/h"), concentration=D("2"), concentration_unit=MG_ML, bsa_m2=D("1.5")
    ) == D("7.5")


def test_a_per_kg_dose_without_weight_is_refused_not_guessed():
    with pytest.raises(ValueError, match="weight"):
        rate("5", "ug/kg/min", "1.6", MG_ML)


def test_rate_step_is_the_resolution_of_the_reported_rate():
    assert rate_step(D("15.4")) == D("0.1")
    assert rate_step(D("15.40")) == D("0.01")
    assert rate_step(D("15")) == D("1")


def test_units_spelled_the_way_pumps_write_them_parse_to_ucum():
    assert dose_unit("mcg/kg/min").ucum == "ug/kg/min"
    assert dose_unit("units/hr").ucum == "[iU]/h"
    assert dose_unit("milliunits/min").ucum == "m[iU]/min"
    assert dose_unit("mEq").ucum == "meq"
    for bad in ("", "mg/kg/kg", "mg/h/kg", "furlongs/h", "mg/min/h"):
        with pytest.raises(UnitError):
            dose_unit(bad)


# -- properties --------------------------------------------------------------------------

CONTINUOUS_UNITS = [
    "ug/kg/min",
    "ug/min",
    "mg/h",
    "mg/kg/h",
    "[iU]/h",
    "[iU]/kg/h",
    "m[iU]/min",
    "g/h",
    "meq/h",
    "mmol/h",
    "ng/kg/min",
    "mg/d",
]
CONC_FOR = {
    "ug": "mg/mL",
    "mg": "mg/mL",
    "g": "g/mL",
    "ng": "ug/mL",
    "[iU]": "[iU]/mL",
    "m[iU]": "[iU]/mL",
    "meq": "meq/mL",
    "mmol": "mmol/L",
}
decimals = st.decimals(min_value=D("0.0001"), max_value=D("9999"), places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=300)
@given(
    unit=st.sampled_from(CONTINUOUS_UNITS),
    dose=decimals,
    conc=st.decimals(min_value=D("0.001"), max_value=D("5000"), places=3),
    weight=st.decimals(min_value=D("0.4"), max_value=D("300"), places=1),
    step=st.sampled_from([D("0.1"), D("0.01"), D("1")]),
)
def test_dose_to_rate_rounded_by_the_pump_and_back_to_dose_stays_within_one_rate_step(unit, dose, conc, weight, step):
    u = dose_unit(unit)
    cu = concentration_unit(CONC_FOR[u.amount.ucum])
    kw = dict(concentration=conc, concentration_unit=cu, weight_kg=weight)
    exact = rate_from_dose(dose, u, **kw)
    assert dose_from_rate(exact, u, **kw).quantize(D("1e-12")) == dose.quantize(D("1e-12"))
    reported = round_rate(exact, step)
    back = dose_from_rate(reported, u, **kw)
    assert abs(back - dose) <= dose_tolerance(step, u, **kw)


FAMILY_UNITS = {"mass": ["ng", "ug", "mg", "g"], "units": ["m[iU]", "[iU]"], "meq": ["meq"], "mmol": ["mmol"]}


@given(
    a=st.sampled_from(sorted(FAMILY_UNITS)),
    b=st.sampled_from(sorted(FAMILY_UNITS)),
    data=st.data(),
    time=st.sampled_from(["min", "h", "d"]),
    per_kg=st.booleans(),
    value=decimals,
)
def test_mixing_unit_families_is_always_refused(a, b, data, time, per_kg, value):
    ua = data.draw(st.sampled_from(FAMILY_UNITS[a]))
    ub = data.draw(st.sampled_from(FAMILY_UNITS[b]))
    dose_u = dose_unit(f"{ua}{'/kg' if per_kg else ''}/{time}")
    other = dose_unit(f"{ub}{'/kg' if per_kg else ''}/{time}")
    conc = concentration_unit(f"{ub}/mL")
    if a == b:
        convert_dose(value, dose_u, other)
        rate_from_dose(value, dose_u, concentration=D(1), concentration_unit=conc, weight_kg=D(70))
        return
    with pytest.raises(UnitFamilyMismatch):
        convert_dose(value, dose_u, other)
    with pytest.raises(UnitFamilyMismatch):
        rate_from_dose(value, dose_u, concentration=D(1), concentration_unit=conc, weight_kg=D(70))
    with pytest.raises(UnitFamilyMismatch):
        dose_from_rate(value, dose_u, concentration=D(1), concentration_unit=conc, weight_kg=D(70))
