"""Verdicts become OBX-ready rows in the local 99PUMPGW code system."""

from __future__ import annotations

from decimal import Decimal as D

from drivers.model import Quantity
from gateway.druglib import ProgramUnderCheck, evaluate
from gateway.hl7.verdict_rows import CODING_SYSTEM, verdict_observations


def test_each_verdict_is_a_cwe_row_followed_by_its_facets(example):
    prog = ProgramUnderCheck(
        drug="Dopamine",
        care_area="ICU",
        concentration=Quantity(D("1.6"), "mg/mL"),
        dose_rate=Quantity(D("35"), "ug/kg/min"),
        patient_weight=Quantity(D("82"), "kg"),
        pump_library_version="old",
    )
    verdicts = evaluate(example, prog)
    rows = verdict_observations(verdicts)
    heads = [r for r in rows if r.value_type == "CWE"]
    assert [r.value[0] for r in heads] == ["library_outdated", "above_hard_max"]
    assert all(r.coding_system == CODING_SYSTEM and r.value[2] == CODING_SYSTEM for r in heads)
    facets = {r.mnemonic: r for r in rows if r.sub_id.startswith("2.")}
    assert facets["PUMPGW_DRUGLIB_LIMIT_NAME"].value == "dose.hard_max"
    assert (facets["PUMPGW_DRUGLIB_VALUE_COMPARED"].value, facets["PUMPGW_DRUGLIB_VALUE_COMPARED"].unit) == (
        "35",
        "ug/kg/min",
    )
    assert (facets["PUMPGW_DRUGLIB_LIMIT_VALUE"].value, facets["PUMPGW_DRUGLIB_LIMIT_VALUE"].unit) == (
        "30",
        "ug/kg/min",
    )
    assert facets["PUMPGW_DRUGLIB_LIBRARY_SHA256"].value == example.sha256
    assert {r.abnormal_flag for r in rows if r.sub_id.split(".")[0] == "2"} == {"HH"}
    assert [r.sub_id for r in rows if r.sub_id.startswith("2")] == ["2", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6"]
