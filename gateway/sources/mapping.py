"""Inbound PCD-01 / PCD-10 / PCD-04 -> what each device reported (pure, no I/O).

A vendor pump server reports in the IPEC infusion-pump model (TF2-R10 App. M), the same tree
the gateway sends (gateway/hl7/pump_tree.py): an MDS row ``1.0.0.0`` whose OBX-18 names the
device, attributes ``1.0.0.k`` (drug library version, clock), then per channel a VMD
``1.n.0.0`` with delivery info ``1.n.1.x`` and the infusate source ``1.n.2.x`` (label, rate,
dose, VTBI, drug, concentration, care area, weight). Rows are recognised by OBX-3's REFID
and OBX-4's position, never by OBX-1.

One message may carry several devices (one MDS row each) and several patients (one PID each):
each device takes the PID/PV1 above it. A weight at MDS level (``1.0.0.k``
MDC_ATTR_PT_WEIGHT) is the *patient record's* weight as the server knows it (the expected
weight of the lb/kg check); a weight under a channel is what was entered at the pump.

A PCD-04 (ORU^R40) reports alerts: facet rows ``<prefix>.f`` (B.8.5); facet 1's OBX-18 names
the device; the prefix ``1.n.x.x`` names the channel (``1.0.0.0``: the device itself).

What cannot be used raises :class:`UnusableMessage` naming the segment and field, which the
listener turns into an AE with ERR-2 (HL7 v2.6 ERL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from common.pcd import mdc
from common.pcd.parse import Message, Segment, obx4_key, read_alerts
from drivers.model import Alarm, AlarmPriority, ChannelState, PumpIdentity, Quantity
from gateway.errors import BadInput
from gateway.hl7.context import PatientIdentity

_UCUM_BY_MDC = {refid: ucum for ucum, (_, refid) in mdc.UNITS.items()}
_STATUS = {
    "pump-delivery-status-delivering": ChannelState.INFUSING,
    "pump-delivery-status-transitioning": ChannelState.INFUSING,
    "pump-delivery-status-kvo": ChannelState.KVO,
    "pump-delivery-status-not-delivering": ChannelState.STOPPED,
    "pump-status-infusing": ChannelState.INFUSING,
    "pump-status-not-infusing": ChannelState.STOPPED,
}
_ALARM_KINDS = {
    "MDC_EVT_FLUID_LINE_OCCL": "occlusion",
    "MDC_EVT_OCCL": "occlusion",
    "MDC_EVT_BATT_LO": "battery_low",
    "MDC_EVT_BATT_FAIL": "battery_depleted",
    "MDC_EVT_STAT_DOOR_OPEN": "door_open",
    "MDC_EVT_EMPTY": "container_empty",
    "MDC_EVT_PUMP_FLOW_FREE": "free_flow",
    "MDC_EVT_ADVIS_PUMP_SYRINGE_REPLACE_WARN": "syringe_near_empty",
}
_PRIORITY = {
    "PH": AlarmPriority.HIGH,
    "PM": AlarmPriority.MEDIUM,
    "PL": AlarmPriority.LOW,
    "PN": AlarmPriority.ADVISORY,
}
_QUANTITIES = {
    "MDC_FLOW_FLUID_PUMP": "rate",
    "MDC_RATE_DOSE": "dose_rate",
    "MDC_VOL_FLUID_TBI": "vtbi",
    "MDC_VOL_FLUID_DELIV_TOTAL": "volume_infused",
    "MDC_CONC_DRUG": "concentration",
    "MDC_ATTR_PT_WEIGHT": "patient_weight",
}


class UnusableMessage(BadInput):
    """A message this source cannot turn into pump data; names where (ERR-2) and why (ERR-8)."""

    def __init__(self, segment: Segment | None, field_no: int | None, reason: str, *, code: str = "207") -> None:
        self.segment_id = segment.name if segment else ""
        self.sequence = segment.number if segment else 0
        self.field_no = field_no
        self.code = code  # HL7 table 0357: 101 required field missing, 102 data type error, 207 application error
        where = f"{self.segment_id}-{field_no}" if segment and field_no else (self.segment_id or "message")
        super().__init__(f"{where} (segment {self.sequence}): {reason}")
        self.reason = reason


@dataclass
class ChannelReport:
    number: int
    label: str = ""
    state: ChannelState = ChannelState.UNKNOWN
    values: dict[str, Quantity] = field(default_factory=dict)
    drug: str | None = None
    care_area: str | None = None


@dataclass(frozen=True, slots=True)
class AlertReport:
    channel: int  # 0: the device itself
    code: str  # the event's REFID (MDC_EVT_...)
    kind: str
    text: str
    phase: str  # start | continue | end | ...
    priority: AlarmPriority

    @property
    def ended(self) -> bool:
        return self.phase in ("end", "tpoint", "stop")

    def alarm(self) -> Alarm:
        return Alarm(code=self.code, kind=self.kind, text=self.text, priority=self.priority)


@dataclass
class DeviceReport:
    """What one message said about one device."""

    device: str  # OBX-18.1 of the MDS (or alert) row
    model: str = ""
    manufacturer: str = ""
    library_version: str | None = None
    device_time: datetime | None = None
    record_weight: Quantity | None = None
    patient: PatientIdentity | None = None
    channels: dict[int, ChannelReport] = field(default_factory=dict)
    alerts: list[AlertReport] = field(default_factory=list)
    event: str | None = None  # PCD-10 event REFID (MDC_ATTR_EVT_COND)
    segment: Segment | None = None  # the row naming the device (OBX-18)

    def identity(self) -> PumpIdentity:
        return PumpIdentity(
            manufacturer=self.manufacturer or "unknown",
            model=self.model or "unknown",
            serial_number=self.device,
            drug_library_version=self.library_version,
        )


def read_devices(message: Message) -> list[DeviceReport]:
    """Every device of an ORU^R01 (PCD-01), ORU^R42 (PCD-10) or ORU^R40 (PCD-04)."""
    msh = message.msh
    assert msh is not None
    if msh.component(9, 2) == "R40":
        return _read_alerts(message)
    devices: list[DeviceReport] = []
    patient: PatientIdentity | None = None
    current: DeviceReport | None = None
    for seg in message.segments:
        if seg.name == "PID":
            patient, current = _patient(seg), None
        elif seg.name == "PV1" and patient is not None:
            patient = PatientIdentity(
                patient.identifier,
                patient.assigning_authority,
                patient.identifier_type,
                patient.family_name,
                patient.given_name,
                seg.field(2) or "I",
            )
        elif seg.name == "OBX":
            key = obx4_key(seg.field(4))
            if key is None or len(key) < 4:
                raise UnusableMessage(seg, 4, f"OBX-4 {seg.field(4)!r} is not a containment position (1.n.c.m)")
            if key[1:4] == (0, 0, 0) and len(key) == 4:
                current = _mds(seg, patient)
                devices.append(current)
                continue
            if current is None:
                raise UnusableMessage(seg, 4, "observation before any MDS row (1.0.0.0) naming the device")
            _row(current, seg, key)
    if not devices:
        raise UnusableMessage(msh, None, "no MDS row (OBX-4 1.0.0.0) names a device", code="101")
    return devices


def _patient(seg: Segment) -> PatientIdentity | None:
    if seg.field(31) == "Y" or not seg.component(3, 1):
        return None  # TF B.5 unknown patient
    return PatientIdentity(
        identifier=seg.component(3, 1),
        assigning_authority=seg.component(3, 4),
        identifier_type=seg.component(3, 5) or "MR",
        family_name=seg.component(5, 1),
        given_name=seg.component(5, 2),
    )


def _mds(seg: Segment, patient: PatientIdentity | None) -> DeviceReport:
    ident = seg.components(18)
    if not ident or not ident[0]:
        raise UnusableMessage(
            seg, 18, "the MDS row names no device (OBX-18 equipment instance identifier empty)", code="101"
        )
    report = DeviceReport(device=ident[0], patient=patient, segment=seg)
    if len(ident) >= 3 and ident[1]:  # legacy form serial^model^manufacturer^type
        report.model, report.manufacturer = ident[1], ident[2]
    return report


def _refid(seg: Segment) -> str:
    comps = seg.components(3)
    if len(comps) > 1 and comps[1]:
        return comps[1]
    if comps and comps[0].isdigit():
        return mdc.REFID_BY_CODE.get(int(comps[0]), "")
    return ""


def _row(dev: DeviceReport, seg: Segment, key: tuple[int, ...]) -> None:
    refid = _refid(seg)
    n = key[1]
    if n == 0:
        if refid == "MDC_PUMP_DRUG_LIBRARY_VERSION":
            dev.library_version = seg.field(5) or None
        elif refid == "MDC_ATTR_PT_WEIGHT":
            dev.record_weight = _quantity(seg)
        elif refid == "MDC_ATTR_EVT_COND":
            dev.event = seg.component(5, 2) or mdc.REFID_BY_CODE.get(_int(seg.component(5, 1)), "") or None
        elif refid == "MDC_ATTR_ID_MODEL":
            for part in seg.field(5).split():
                name, _, value = part.partition("=")
                if name == "manufacturer":
                    dev.manufacturer = value.strip('"')
                elif name == "model":
                    dev.model = value.strip('"')
        return
    ch = dev.channels.setdefault(n, ChannelReport(n))
    if refid in ("MDC_DEV_PUMP_CURRENT_DELIVERY_STATUS", "MDC_PUMP_INFUSING_STATUS"):
        status = seg.component(5, 2) or seg.component(5, 1)
        state = _STATUS.get(status)
        if state is not None and (ch.state is ChannelState.UNKNOWN or refid == "MDC_DEV_PUMP_CURRENT_DELIVERY_STATUS"):
            ch.state = state
    elif refid == "MDC_DEV_PUMP_SOURCE_CHANNEL_LABEL":
        ch.label = seg.field(5)
    elif refid == "MDC_DRUG_NAME_LABEL":
        ch.drug = seg.field(5) or None
    elif refid == "MDC_PUMP_DRUG_LIBRARY_CARE_AREA":
        ch.care_area = seg.field(5) or None
    elif refid in _QUANTITIES and key[2] == 2:
        q = _quantity(seg)
        if q is not None:
            ch.values[_QUANTITIES[refid]] = q


def _int(text: str) -> int:
    return int(text) if text.isdigit() else -1


def _quantity(seg: Segment) -> Quantity | None:
    raw = seg.field(5)
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise UnusableMessage(seg, 5, f"OBX-5 {raw!r} is not a number (value type NM)", code="102") from None
    if not value.is_finite():
        raise UnusableMessage(seg, 5, f"OBX-5 {raw!r} is not a finite number", code="102")
    unit = seg.components(6)
    ucum = ""
    if len(unit) >= 6 and unit[5] == "UCUM":  # MDC triplet with the UCUM alternate (M.1.2.2)
        ucum = unit[3] or unit[4]
    elif len(unit) >= 3 and unit[2] == "UCUM":
        ucum = unit[0]
    elif len(unit) >= 2:
        ucum = _UCUM_BY_MDC.get(unit[1], "")
    if not ucum:
        raise UnusableMessage(seg, 6, f"OBX-6 {seg.field(6)!r}: unit not recognised (MDC or UCUM expected)", code="102")
    return Quantity(value, ucum)


def _read_alerts(message: Message) -> list[DeviceReport]:
    devices: dict[str, DeviceReport] = {}
    patient = next((_patient(s) for s in message.named("PID")), None)
    for view in read_alerts(message):
        first = view.facets[1]
        ident = first.components(18)
        if not ident or not ident[0]:
            raise UnusableMessage(first, 18, "the alert names no device (OBX-18 of facet 1 empty)", code="101")
        dev = devices.setdefault(ident[0], DeviceReport(device=ident[0], patient=patient, segment=first))
        value = view.event_value
        code = (value[1] if len(value) > 1 else "") or mdc.REFID_BY_CODE.get(_int(value[0] if value else ""), "")
        if not code:
            raise UnusableMessage(first, 5, "the alert's event code (OBX-5) is empty", code="101")
        text = value[8] if len(value) > 8 and value[8] else code
        dev.alerts.append(
            AlertReport(
                channel=view.prefix[1],
                code=code,
                kind=_ALARM_KINDS.get(code, "alarm"),
                text=text,
                phase=view.phase or "start",
                priority=_PRIORITY.get(view.priority, AlarmPriority.HIGH),
            )
        )
    if not devices:
        msh = message.msh
        raise UnusableMessage(msh, None, "no alert (facet rows 1.n.c.m.f with facet 1) in the PCD-04", code="101")
    return list(devices.values())
