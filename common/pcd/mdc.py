"""The MDC (IEEE 11073-10101) terms pumpgw sends or checks, transcribed from ihe-pcd.md §11.

Only codes printed in the Technical Framework (or computed from a TF-printed
``partition::code`` pair) are here. Terms whose number is not published (§13) map to
``None``: the encoder sends them as the pending code ``0^REFID^MDC`` (the IPEC-2015
convention) or leaves them out, as ``EncodeContext.unpublished_codes`` says. Never add a
number from an unchecked source — some public tables are wrong (§11 caution).
"""

from __future__ import annotations

from typing import Final, Literal, overload

# REFID -> context-free code (partition * 65536 + term code); None = not published yet.
TERMS: Final[dict[str, int | None]] = {
    # §11.1 devices / containment
    "MDC_DEV_PUMP_INFUS_MDS": 69985,
    "MDC_DEV_PUMP_INFUS_VMD": 69986,
    "MDC_DEV_PUMP_INFUS_CHAN_SOURCE": 126977,
    "MDC_DEV_PUMP_INFUS_CHAN_DELIVERY": 126978,
    "MDC_DEV_PUMP_INFUS_LVP_MDS": 70049,
    "MDC_DEV_PUMP_INFUS_LVP_VMD": 70050,
    "MDC_DEV_PUMP_DELIVERY_INFO": 70067,
    "MDC_DEV_PUMP_INFUSATE_SOURCE_PRIMARY": 70071,
    "MDC_DEV_PUMP_INFUS_RACK_MDS": 70101,
    "MDC_DEV_MDS": 69633,
    "MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS": 69965,
    # §11.2 pump metrics and settings
    "MDC_FLOW_FLUID_PUMP": 157784,
    "MDC_FLOW_FLUID_PUMP_CURRENT": 158014,
    "MDC_RATE_DOSE": 157924,
    "MDC_FLOW_DRUG_DELIV": 157804,
    "MDC_VOL_FLUID_TBI": 157884,
    "MDC_VOL_FLUID_TBI_REMAIN": 157872,
    "MDC_VOL_FLUID_DELIV": 157864,
    "MDC_VOL_FLUID_DELIV_TOTAL": 157993,
    "MDC_VOL_FLUID_DELIV_SEGMENT": None,
    "MDC_VOL_INFUS_ACTUAL_TOTAL": 157948,
    "MDC_TIME_PD_REMAIN": 157916,
    "MDC_DRUG_NAME_LABEL": 184514,
    "MDC_DRUG_NAME_TYPE": 184330,
    "MDC_CONC_DRUG": 157760,
    "MDC_PUMP_DRUG_LIBRARY_VERSION": 184517,
    "MDC_PUMP_DRUG_LIBRARY_CARE_AREA": 184516,
    "MDC_RACK_DRUG_LIBRARY_VERSION": 184521,
    "MDC_RACK_DRUG_LIBRARY_NAME": 184522,
    "MDC_PUMP_INFUSING_STATUS": 184519,
    "MDC_DEV_PUMP_ACTIVE_SOURCES": 158016,
    "MDC_DEV_PUMP_CURRENT_DELIVERY_STATUS": 158005,
    "MDC_DEV_PUMP_PROGRAM_DELIVERY_MODE": 158008,
    "MDC_DEV_PUMP_SOURCE_CHANNEL_LABEL": 158012,
    "MDC_DEV_PUMP_NOT_DELIVERING_REASON": None,
    "MDC_PUMP_STAT": 184508,
    "MDC_PUMP_MODE": 184504,
    "MDC_ATTR_PT_WEIGHT": 68063,
    "MDC_ATTR_PT_HEIGHT": 68060,
    "MDC_AREA_BODY_SURF_ACTUAL": 188744,
    "MDC_INFUS_TOTAL_NUM_STEPS": 158033,
    # §11.3 events and alert attributes
    "MDC_ATTR_EVT_COND": 68487,
    "MDC_ATTR_EVT_SOURCE": 68488,
    "MDC_EVT_PUMP_DELIV_START": 197288,
    "MDC_EVT_PUMP_DELIV_STOP": None,
    "MDC_EVT_PUMP_DELIV_COMP": None,
    "MDC_EVT_PUMP_PROG_CLEARED": None,
    "MDC_EVT_COMM_STATUS_CHANGE": None,
    "MDC_EVT_DEVICE_TIME_CHANGED": None,
    "MDC_EVT_ALARM": 196616,
    "MDC_EVT_FLUID_LINE_OCCL": 196940,
    "MDC_EVT_OCCL": 196688,
    "MDC_EVT_FLUID_LINE_PROB": 196860,
    "MDC_EVT_DOOR_OR_HANDLE_POSN_PROB": 196842,
    "MDC_EVT_STAT_DOOR_OPEN": 202828,
    "MDC_EVT_STAT_DOOR_CLOS": 202852,
    "MDC_EVT_BATT_LO": 196802,
    "MDC_EVT_BATT_FAIL": 196800,
    "MDC_EVT_BATT_MALF": 196804,
    "MDC_EVT_ADVIS_BATT_REPLACE": 203286,
    "MDC_EVT_EMPTY": 196634,
    "MDC_EVT_PUMP_FLOW_FREE": 197206,
    "MDC_EVT_ADVIS_PUMP_SYRINGE_REPLACE_WARN": 203320,
    "MDC_EVT_STAT_AL_SILENCE": 202822,
    "MDC_EVT_LO": 196670,
    "MDC_EVT_HI": 196648,
    "MDC_EVT_WATCHDOG": 198200,
    "MDC_ATTR_ALERT_SOURCE": 68480,
    "MDC_ATTR_EVENT_PHASE": 68481,
    "MDC_ATTR_ALARM_STATE": 68482,
    "MDC_ATTR_ALARM_INACTIVATION_STATE": 68483,
    "MDC_ATTR_ALARM_PRIORITY": 68484,
    "MDC_ATTR_ALERT_TYPE": 68485,
    "MDC_ATTR_ALERT_TEXT": 68546,
    # §11.4 device attributes
    "MDC_ATTR_SYS_TYPE": 67974,
    "MDC_ATTR_VMS_MDS_STAT": 68007,
    "MDC_ATTR_ID_MODEL": 67880,
    "MDC_ATTR_SYS_ID": 67972,
    "MDC_ATTR_ID_SOFT": 67886,
    "MDC_ATTR_ID_PROD_SPECN": 67885,
    "MDC_ATTR_ID_BED_LABEL": 67870,
    "MDC_ATTR_TIME_ABS": 67975,
    "MDC_ATTR_POWER_STAT": 67925,
    "MDC_ATTR_VAL_BATT_CHARGE": 67996,
    "MDC_ATTR_VAL_BATT_REMAIN": 67976,
    "MDC_ATTR_ID_TYPE": 67887,
    "MDC_ATTR_VMD_STAT": 68002,
    "MDC_ATTR_CHAN_STAT": 67856,
    # production-specification components (traceability-fleet.md §2.2: HL7 PHD IG value set
    # MDCDeviceVersionTypes for 531974-531977; 531972 from a secondary table) and CP-PCD-152's
    # provisionally approved MEM observation code for OBR-4 of a device-management report
    "MDC_ID_PROD_SPEC_SERIAL": 531972,
    "MDC_ID_PROD_SPEC_FW": 531976,
    "MDC_OBS_MEM": 69135,
    "MDC_TIME_CAP_STATE": 68219,
    "MDC_TIME_SYNC_PROTOCOL": 68220,
}

# §11.5 units: UCUM spelling -> (MDC code, REFID). OBX-6 carries both (M.1.2.2 style).
UNITS: Final[dict[str, tuple[int, str]]] = {
    "mL/h": (265266, "MDC_DIM_MILLI_L_PER_HR"),
    "mL": (263762, "MDC_DIM_MILLI_L"),
    "ug/kg/min": (265619, "MDC_DIM_MICRO_G_PER_KG_PER_MIN"),
    "mg": (263890, "MDC_DIM_MILLI_G"),
    "g": (263872, "MDC_DIM_X_G"),
    "kg": (263875, "MDC_DIM_KILO_G"),
    "mg/mL": (264306, "MDC_DIM_MILLI_G_PER_ML"),
    "mg/h": (265522, "MDC_DIM_MILLI_G_PER_HR"),
    "min": (264352, "MDC_DIM_MIN"),
    "h": (264384, "MDC_DIM_HR"),
    "s": (264320, "MDC_DIM_X_SEC"),
    "cm": (263441, "MDC_DIM_CENTI_M"),
    "m2": (263616, "MDC_DIM_SQ_X_M"),
    "%": (262688, "MDC_DIM_PERCENT"),
    "mm[Hg]": (266016, "MDC_DIM_MMHG"),
    "{beat}/min": (264864, "MDC_DIM_BEAT_PER_MIN"),
}

# Every REFID -> code pair the checker may compare against, units included.
KNOWN_CODES: Final[dict[str, int]] = {
    **{refid: code for refid, code in TERMS.items() if code is not None},
    **{refid: code for code, refid in UNITS.values()},
}
REFID_BY_CODE: Final[dict[int, str]] = {code: refid for refid, code in KNOWN_CODES.items()}

PARTITION_SIZE: Final = 65536  # TF2-R10 A.1: context-free code = partition * 2**16 + term code

# Table B.8.6-2 MetricCategory, OBX-17: settings apart from measurements.
CATEGORY_AUTO_MEASUREMENT: Final = "AMEAS^auto-measurement^MDC"
CATEGORY_MANUAL_SETTING: Final = "MSET^manual-setting^MDC"

# PCD-04 alert facets (TF2-R10 B.8.5 Tables B.8.5-1/-2): facet number -> REFID of OBX-3.
FACET_REFIDS: Final[dict[int, str]] = {
    2: "MDC_ATTR_ALERT_SOURCE",
    3: "MDC_ATTR_EVENT_PHASE",
    4: "MDC_ATTR_ALARM_STATE",
    5: "MDC_ATTR_ALARM_INACTIVATION_STATE",
    6: "MDC_ATTR_ALARM_PRIORITY",
    7: "MDC_ATTR_ALERT_TYPE",
}
ONSET_PHASES: Final = frozenset({"start", "start_only", "tpoint", "present"})
EVENT_PHASES: Final = ONSET_PHASES | {
    "continue",
    "end",
    "update",
    "escalate",
    "inactivate",
    "acknowledged",
    "deescalate",
    "reset",
    "stop",
}
ALARM_STATES: Final = frozenset({"inactive", "active", "latched"})
PRIORITIES: Final = frozenset({"PN", "PL", "PM", "PH"})
ALERT_TYPES: Final = frozenset({"SP", "ST", "SA"})


@overload
def cwe(refid: str, pending_allowed: Literal[True] = True) -> str: ...
@overload
def cwe(refid: str, pending_allowed: bool) -> str | None: ...


def cwe(refid: str, pending_allowed: bool = True) -> str | None:
    """``code^REFID^MDC`` for a term; ``0^REFID^MDC`` when unpublished (§13), or None if not allowed."""
    code = TERMS.get(refid)
    if code is None:
        if refid not in TERMS:
            raise KeyError(f"{refid} is not in pumpgw's MDC table (common/pcd/mdc.py)")
        return f"0^{refid}^MDC" if pending_allowed else None
    return f"{code}^{refid}^MDC"
