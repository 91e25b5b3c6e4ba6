"""What a vendor pump server sends: IHE PCD-01, PCD-10 and PCD-04 for its pumps (hand-built).

Written independently of the gateway's encoders (only the TF's tables are shared knowledge):
the rows follow the IPEC infusion-pump model of TF2-R10 App. M as in the TF's own PCD-10
example (M.1.2.2), one message per pump, the device named by OBX-18 of its MDS row and the
patient in PID/PV1 (a vendor server knows the patient from its ADT feed).

``VERDICT_PROGRAMS`` are twelve pumps whose programs, checked against the example drug
library (config/drug-library.example.json), make each of the twelve verdict kinds fire.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

SENDER = "VENDOR_PUMP_SERVER^0012210000000001^EUI-64"
_PROFILES = {
    "ORU^R01^ORU_R01": "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO",
    "ORU^R42^ORU_R01": "IHE_PCD_010^IHE PCD^1.3.6.1.4.1.19376.1.6.4.10^ISO",
    "ORU^R40^ORU_R40": "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.4.1^ISO",
}
_UNITS = {
    "mL/h": "265266^MDC_DIM_MILLI_L_PER_HR^MDC^mL/h^mL/h^UCUM",
    "mL": "263762^MDC_DIM_MILLI_L^MDC^mL^mL^UCUM",
    "ug/kg/min": "265619^MDC_DIM_MICRO_G_PER_KG_PER_MIN^MDC^ug/kg/min^ug/kg/min^UCUM",
    "mg/mL": "264306^MDC_DIM_MILLI_G_PER_ML^MDC^mg/mL^mg/mL^UCUM",
    "kg": "263875^MDC_DIM_KILO_G^MDC^kg^kg^UCUM",
    "meq/mL": "meq/mL^meq/mL^UCUM",
}
_STATUS = {"infusing": "pump-delivery-status-delivering", "stopped": "pump-delivery-status-not-delivering"}


@dataclass(frozen=True)
class Program:
    """One pump of the vendor server and what it runs (values as text, as displayed)."""

    device: str  # serial number, OBX-18.1
    bed: str
    patient: str  # MRN
    drug: str | None = None
    concentration: tuple[str, str] | None = None  # (value, unit)
    dose_rate: tuple[str, str] | None = None
    rate_ml_h: str | None = None
    vtbi_ml: str | None = None
    care_area: str | None = "ICU"
    weight_kg: str | None = "82"
    record_weight_kg: str | None = None  # the patient record's weight (MDS level)
    library: str = "EXAMPLE.2024.v1"
    state: str = "infusing"


_DOPA = ("1.6", "mg/mL")
VERDICT_PROGRAMS: dict[str, Program] = {
    "within_limits": Program(
        "VS0001", "ICU bed 21", "MRN2001", "Dopamine", _DOPA, ("5", "ug/kg/min"), "15.4", "250", care_area="Crit Care"
    ),
    "below_soft_min": Program("VS0002", "ICU bed 22", "MRN2002", "Dopamine", _DOPA, ("0.5", "ug/kg/min"), "1.5", "250"),
    "above_soft_max": Program("VS0003", "ICU bed 23", "MRN2003", "Dopamine", _DOPA, ("25", "ug/kg/min"), "77", "250"),
    "above_hard_max": Program("VS0004", "ICU bed 24", "MRN2004", "Dopamine", _DOPA, ("35", "ug/kg/min"), "107", "250"),
    "below_hard_min": Program(
        "VS0005",
        "Ward 5 bed 1",
        "MRN2005",
        "Potassium chloride",
        ("0.02", "meq/mL"),
        None,
        "100",
        "100",
        care_area="MED-SURG",
        weight_kg=None,
    ),
    "drug_not_in_library": Program("VS0006", "ICU bed 26", "MRN2006", "Amiodarone", None, None, "10", "250"),
    "no_dose_check_possible": Program(
        "VS0007", "ICU bed 27", "MRN2007", "Dopamine", ("3.2", "mg/mL"), None, "10", "250"
    ),
    "care_area_unknown": Program(
        "VS0008", "NICU cot 8", "MRN2008", "Dopamine", _DOPA, None, "10", "250", care_area="NICU"
    ),
    "weight_missing": Program(
        "VS0009", "ICU bed 29", "MRN2009", "Dopamine", _DOPA, ("5", "ug/kg/min"), "15.4", "250", weight_kg=None
    ),
    "weight_outside_limits": Program(
        "VS0010", "ICU bed 30", "MRN2010", "Dopamine", _DOPA, ("5", "ug/kg/min"), "4.7", "250", weight_kg="25"
    ),
    "weight_suspicious": Program(
        "VS0011",
        "ICU bed 31",
        "MRN2011",
        "Dopamine",
        _DOPA,
        ("5", "ug/kg/min"),
        "33.8",
        "250",
        weight_kg="180",
        record_weight_kg="82",
    ),
    "library_outdated": Program(
        "VS0012",
        "ICU bed 32",
        "MRN2012",
        "Dopamine",
        _DOPA,
        ("5", "ug/kg/min"),
        "15.4",
        "250",
        library="EXAMPLE.2023.v9",
    ),
}


def _ts(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S") + "+0000"


def _head(message_type: str, control_id: str, p: Program, *, processing_id: str = "P") -> list[str]:
    return [
        (
            f"MSH|^~\\&|{SENDER}|VENDOR|PUMPGW|HOSPITAL|{_ts()}||{message_type}|{control_id}|{processing_id}|2.6|||AL|NE"
            f"||UNICODE UTF-8|en^English^ISO639||{_PROFILES.get(message_type, '')}"
        ),
        f"PID|||{p.patient}^^^HOSPITAL^MR||Sim^Patient^^^^^L||19700101|U|||||||||||||||||||||||N",
        f"PV1||I|{p.bed}",
    ]


class _Rows:
    def __init__(self) -> None:
        self.rows: list[str] = []

    def add(
        self,
        vt: str,
        code: str,
        sub: str,
        value: str = "",
        unit: str = "",
        status: str = "R",
        equipment: str = "",
        category: str = "",
    ) -> None:
        n = len(self.rows) + 1
        row = f"OBX|{n}|{vt}|{code}|{sub}|{value}|{unit}|||||{status}||||||{category}|{equipment}"
        self.rows.append(row.rstrip("|"))


def _mds(rows: _Rows, p: Program, event: str | None = None) -> None:
    rows.add(
        "",
        "70049^MDC_DEV_PUMP_INFUS_LVP_MDS^MDC",
        "1.0.0.0",
        status="X",
        equipment=f"{p.device}^^0012210000000001^EUI-64",
    )
    k = 1
    rows.add("ST", "184517^MDC_PUMP_DRUG_LIBRARY_VERSION^MDC", f"1.0.0.{k}", p.library)
    if event is not None:
        rows.add("CWE", "68487^MDC_ATTR_EVT_COND^MDC", f"1.0.0.{k + 1}", event)
        rows.add("ST", "68488^MDC_ATTR_EVT_SOURCE^MDC", f"1.0.0.{k + 2}", "1.1.2.0")
        k += 2
    if p.record_weight_kg is not None:
        k += 1
        rows.add("NM", "68063^MDC_ATTR_PT_WEIGHT^MDC", f"1.0.0.{k}", p.record_weight_kg, _UNITS["kg"])
    rows.add("DTM", "67975^MDC_ATTR_TIME_ABS^MDC", f"1.0.0.{k + 1}", _ts())


def _channel(rows: _Rows, p: Program) -> None:
    rows.add("", "70050^MDC_DEV_PUMP_INFUS_LVP_VMD^MDC", "1.1.0.0", status="X")
    rows.add("", "70067^MDC_DEV_PUMP_DELIVERY_INFO^MDC", "1.1.1.0", status="X")
    infusing = p.state == "infusing"
    rows.add(
        "CWE",
        "184519^MDC_PUMP_INFUSING_STATUS^MDC",
        "1.1.1.1",
        "^pump-status-infusing" if infusing else "^pump-status-not-infusing",
    )
    rows.add("", "70071^MDC_DEV_PUMP_INFUSATE_SOURCE_PRIMARY^MDC", "1.1.2.0", status="X")
    m = 1
    rows.add("CWE", "158005^MDC_DEV_PUMP_CURRENT_DELIVERY_STATUS^MDC", "1.1.2.1", "^" + _STATUS[p.state])
    m += 1
    rows.add("ST", "158012^MDC_DEV_PUMP_SOURCE_CHANNEL_LABEL^MDC", f"1.1.2.{m}", "A")
    setting = "MSET^manual-setting^MDC"
    for code, q in (
        ("157784^MDC_FLOW_FLUID_PUMP^MDC", (p.rate_ml_h, "mL/h") if p.rate_ml_h else None),
        ("157924^MDC_RATE_DOSE^MDC", p.dose_rate),
        ("157884^MDC_VOL_FLUID_TBI^MDC", (p.vtbi_ml, "mL") if p.vtbi_ml else None),
    ):
        if q is not None:
            m += 1
            rows.add("NM", code, f"1.1.2.{m}", q[0], _UNITS[q[1]], category=setting)
    if p.drug:
        m += 1
        rows.add("ST", "184514^MDC_DRUG_NAME_LABEL^MDC", f"1.1.2.{m}", p.drug, category=setting)
    if p.concentration:
        m += 1
        rows.add(
            "NM",
            "157760^MDC_CONC_DRUG^MDC",
            f"1.1.2.{m}",
            p.concentration[0],
            _UNITS[p.concentration[1]],
            category=setting,
        )
    if p.care_area:
        m += 1
        rows.add("ST", "184516^MDC_PUMP_DRUG_LIBRARY_CARE_AREA^MDC", f"1.1.2.{m}", p.care_area, category=setting)
    if p.weight_kg:
        m += 1
        rows.add("NM", "68063^MDC_ATTR_PT_WEIGHT^MDC", f"1.1.2.{m}", p.weight_kg, _UNITS["kg"], category=setting)


def pcd01(p: Program, control_id: str, *, processing_id: str = "P") -> bytes:
    rows = _Rows()
    _mds(rows, p)
    _channel(rows, p)
    obr = f"OBR|1|{control_id}^VENDOR_PUMP_SERVER|{control_id}^VENDOR_PUMP_SERVER|182777000^monitoring of patient^SCT|||{_ts()}"
    return _join([*_head("ORU^R01^ORU_R01", control_id, p, processing_id=processing_id), obr, *rows.rows])


def pcd10(p: Program, control_id: str, *, event: str = "start") -> bytes:
    rows = _Rows()
    code = {"start": "197288^MDC_EVT_PUMP_DELIV_START^MDC", "stop": "0^MDC_EVT_PUMP_DELIV_STOP^MDC"}[event]
    if event == "stop":
        p = replace(p, state="stopped")
    _mds(rows, p, event=code)
    _channel(rows, p)
    obr = f"OBR|1|{control_id}^VENDOR_PUMP_SERVER|{control_id}^VENDOR_PUMP_SERVER|182777000^monitoring of patient^SCT|||{_ts()}"
    return _join([*_head("ORU^R42^ORU_R01", control_id, p), obr, *rows.rows])


def pcd04(p: Program, control_id: str, *, alert_id: str, phase: str = "start") -> bytes:
    """An occlusion on channel 1 (the TF's B. Braun example E.3.2, with facets 6 and 7)."""
    t = _ts()
    state = "inactive" if phase == "end" else "active"
    rows = [
        (
            f"OBX|1|CWE|196616^MDC_EVT_ALARM^MDC|1.1.2.0.1|196940^MDC_EVT_FLUID_LINE_OCCL^MDC^^^^^^Occlusion||||||F|||{t}"
            f"||||{p.device}^^0012210000000001^EUI-64"
        ),
        "OBX|2|CWE|68480^MDC_ATTR_ALERT_SOURCE^MDC|1.1.2.0.2|70071^MDC_DEV_PUMP_INFUSATE_SOURCE_PRIMARY^MDC||||||F",
        f"OBX|3|ST|68481^MDC_ATTR_EVENT_PHASE^MDC|1.1.2.0.3|{phase}||||||F",
        f"OBX|4|ST|68482^MDC_ATTR_ALARM_STATE^MDC|1.1.2.0.4|{state}||||||F",
        "OBX|5|ST|68483^MDC_ATTR_ALARM_INACTIVATION_STATE^MDC|1.1.2.0.5|enabled||||||F",
        "OBX|6|ST|68484^MDC_ATTR_ALARM_PRIORITY^MDC|1.1.2.0.6|PH||||||F",
        "OBX|7|ST|68485^MDC_ATTR_ALERT_TYPE^MDC|1.1.2.0.7|ST||||||F",
    ]
    obr = f"OBR|1||{alert_id}^VENDOR_PUMP_SERVER|196616^MDC_EVT_ALARM^MDC|||{t}"
    return _join([*_head("ORU^R40^ORU_R40", control_id, p), obr, *rows])


def _join(segments: list[str]) -> bytes:
    return ("\r".join(segments) + "\r").encode("utf-8")
