"""PCD-01, PCD-04 and PCD-10 encoders: normalized pump state and events -> ER7 bytes.

Each encoder returns ``(control_id, message)``: MSH-10 is fixed here, once, and the outbox
stores these exact bytes and resends them unchanged (design.md §2 invariant 2). Segments
end with CR; MLLP framing is the sender's job. Plain string assembly (see er7.py for why);
tests validate every shape with hl7apy and the independent ``hl7`` package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from common.pcd import mdc
from drivers.model import AlarmPriority, ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot
from gateway.events.model import EventKind, PumpEvent
from gateway.hl7.context import EncodeContext
from gateway.hl7.er7 import SEGMENT_SEP, dtm, escape
from gateway.hl7.errors import Hl7EncodeError, UnpublishedCodeError
from gateway.hl7.pump_tree import ObxRows, channel_rows, device_identifier, mds_rows

# TF2-R10 B.1 table / M.1.1 (ihe-pcd.md §2.1): MSH-9, MSH-21.
PROFILE_PCD01 = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
PROFILE_PCD04 = "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.4.1^ISO"
PROFILE_PCD10 = "IHE_PCD_010^IHE PCD^1.3.6.1.4.1.19376.1.6.4.10^ISO"

# PCD-10 covers these event kinds (TF2-R10 Table M.1.2-1). Alarms go to PCD-04; an identity
# change has no IPEC event: it shows in the next PCD-01's OBX-18 (and on MQTT).
PCD10_EVENTS: dict[EventKind, str] = {
    EventKind.DELIVERY_START: "MDC_EVT_PUMP_DELIV_START",
    EventKind.DELIVERY_STOP: "MDC_EVT_PUMP_DELIV_STOP",
    EventKind.DELIVERY_COMPLETE: "MDC_EVT_PUMP_DELIV_COMP",
    EventKind.PROGRAM_CLEARED: "MDC_EVT_PUMP_PROG_CLEARED",
    EventKind.COMM_LOST: "MDC_EVT_COMM_STATUS_CHANGE",
    EventKind.COMM_RESTORED: "MDC_EVT_COMM_STATUS_CHANGE",
    EventKind.DEVICE_TIME_CHANGED: "MDC_EVT_DEVICE_TIME_CHANGED",
}
_CLOSING_REASONS = frozenset({"channel_removed", "device_replaced"})
_COMM_STATUS = {EventKind.COMM_LOST: "comm-status-offline", EventKind.COMM_RESTORED: "comm-status-online"}

# Alarm kinds (drivers.model.Alarm.kind) with a TF-printed MDC event code (§11.3). Any other
# kind is sent as MDC_EVT_ALARM with the pump's text: an alarm is never dropped for want of
# a code ("air in line" has no published code at all, §13).
ALARM_EVENTS: dict[str, str] = {
    "occlusion": "MDC_EVT_FLUID_LINE_OCCL",
    "occlusion_upstream": "MDC_EVT_FLUID_LINE_OCCL",
    "occlusion_downstream": "MDC_EVT_FLUID_LINE_OCCL",
    "battery_low": "MDC_EVT_BATT_LO",
    "battery_depleted": "MDC_EVT_BATT_FAIL",
    "door_open": "MDC_EVT_STAT_DOOR_OPEN",
    "container_empty": "MDC_EVT_EMPTY",
    "free_flow": "MDC_EVT_PUMP_FLOW_FREE",
    "syringe_near_empty": "MDC_EVT_ADVIS_PUMP_SYRINGE_REPLACE_WARN",
}
# Conditions of the whole device, not of one delivery channel: reported on the MDS
# (source 1.0.0.0, MDC_DEV_PUMP_INFUS*_MDS) even when a driver lists them under a channel.
PUMP_LEVEL_ALARM_KINDS = frozenset({"battery_low", "battery_depleted", "pump_reset", "power_lost", "comm_timeout"})
_PRIORITY = {
    AlarmPriority.HIGH: "PH",
    AlarmPriority.MEDIUM: "PM",
    AlarmPriority.LOW: "PL",
    AlarmPriority.ADVISORY: "PN",
}
_PHASE = {EventKind.ALARM_ONSET: "start", EventKind.ALARM_CONTINUE: "continue", EventKind.ALARM_END: "end"}


def _hd(text: str) -> str:
    """A configured HD/EI value written in ER7 (``APP^EUI^EUI-64``): keep ``^``, escape the rest."""
    return "^".join(escape(part) for part in text.split("^"))


def _msh(ctx: EncodeContext, control_id: str, message_type: str, profile: str, msh16: str, non_ascii: bool) -> str:
    charset = "UNICODE UTF-8" if non_ascii else ""
    return (
        f"MSH|^~\\&|{escape(ctx.sending_application)}^{ctx.eui64.upper()}^EUI-64|{escape(ctx.site)}"
        f"|{_hd(ctx.receiving_application)}|{_hd(ctx.receiving_facility)}|{dtm(ctx.clock(), what='MSH-7')}"
        f"||{message_type}|{control_id}|{ctx.processing_id}|2.6|||AL|{msh16}|{escape(ctx.country)}"
        f"|{charset}|en^English^ISO639||{profile}"
    )


def _patient(ctx: EncodeContext, pump_id: str) -> list[str]:
    """PID and PV1; the TF's unknown-patient convention until a patient is associated (B.5)."""
    patient = ctx.patients.get(pump_id)
    info = ctx.pump(pump_id)
    if patient is None:
        pid = "PID|||||^^^^^^U" + "|" * 26 + "Y"
        patient_class = "U"
    else:
        cx = f"{escape(patient.identifier)}^^^{escape(patient.assigning_authority)}^{escape(patient.identifier_type)}"
        family, given = escape(patient.family_name), escape(patient.given_name)
        name = f"{family}^{given}^^^^^L" if family or given else "^^^^^^U"  # B.5 PID-5 name type
        pid = f"PID|||{cx}||{name}" + "|" * 26 + "N"
        patient_class = escape(patient.patient_class) or "U"
    location = escape(ctx.ward) + (f"^^{escape(info.location)}" if info.location.strip() else "")
    return [pid, f"PV1||{patient_class}|{location}"]


def _assemble(
    ctx: EncodeContext, control_id: str, pump_id: str, message_type: str, profile: str, msh16: str, body: list[str]
) -> tuple[str, bytes]:
    segments = _patient(ctx, pump_id) + body
    text = SEGMENT_SEP.join(segments)
    msh = _msh(ctx, control_id, message_type, profile, msh16, not (text.isascii() and _ctx_ascii(ctx)))
    return control_id, (msh + SEGMENT_SEP + text + SEGMENT_SEP).encode("utf-8")


def _ctx_ascii(ctx: EncodeContext) -> bool:
    return (ctx.site + ctx.receiving_application + ctx.receiving_facility + ctx.gateway_id).isascii()


def _filler(ctx: EncodeContext, entity: str) -> str:
    """OBR-3 EI: ``<unique id>^<MSH-3 namespace>^<gateway EUI-64>^EUI-64`` (B.6 OBR-3)."""
    return f"{escape(entity)}^{escape(ctx.sending_application)}^{ctx.eui64.upper()}^EUI-64"


def encode_pcd01(
    snapshot: PumpSnapshot,
    ctx: EncodeContext,
    *,
    pump_id: str,
    verdicts: Mapping[str, Sequence[Any]] | None = None,
    identity: PumpIdentity | None = None,
) -> tuple[str, bytes]:
    """PCD-01 ``ORU^R01^ORU_R01``: every channel of one pump, observed at ``received_at``.

    ``verdicts`` maps a channel id to its drug-library verdict rows (local code system
    ``99PUMPGW``, docs/drug-library.md §6), appended under that channel's infusate source.
    """
    info = ctx.pump(pump_id)
    control_id = ctx.control_ids.next_id()
    rows = ObxRows()
    mds_rows(rows, snapshot, info, ctx, identity=identity)
    for n, channel in enumerate(snapshot.channels, start=1):
        channel_rows(rows, n, channel, info, ctx, verdicts=(verdicts or {}).get(channel.channel_id, ()))
    obr_time = dtm(snapshot.received_at, what="OBR-7")
    # OBR-3 EI-1 = MSH-10 (unique per message). OBR-4: one order group for a multi-channel
    # pump, so the service is the monitoring itself, coded as in the TF's PCD-01 example (E.1.2).
    obr = f"OBR|1||{_filler(ctx, control_id)}|182777000^monitoring of patient^SCT|||{obr_time}"
    return _assemble(ctx, control_id, pump_id, "ORU^R01^ORU_R01", PROFILE_PCD01, "NE", [obr, *rows.segments])


def encode_pcd10(
    event: PumpEvent,
    ctx: EncodeContext,
    *,
    verdicts: Mapping[str, Sequence[Any]] | None = None,
    identity: PumpIdentity | None = None,
) -> tuple[str, bytes]:
    """PCD-10 ``ORU^R42^ORU_R01``: one infusion event, timed when it happened at the pump.

    Titration (any program change while infusing) is the events layer's stop + start pair
    (Table M.1.2.1-4): the stop, marked ``detail["reason"] == "transitioning"``, documents
    the *old* program (``event.previous_channel``: old rate, dose, VTBI, drug) still flowing,
    with ``pump-delivery-status-transitioning``; the start that follows carries the new one.
    ``identity`` is the pump's known identity for OBX-18 (events without a snapshot too).
    """
    refid = PCD10_EVENTS.get(event.kind)
    if refid is None:
        raise Hl7EncodeError(
            f"{event.kind} is not a PCD-10 event (alarms: PCD-04)", field="event.kind", pump_id=event.pump_id
        )
    code = mdc.cwe(refid, ctx.unpublished_codes == "pending")
    if code is None:
        raise UnpublishedCodeError(refid, event.pump_id)
    if event.kind in _COMM_STATUS:  # parameter in CWE-9 original text, as the TF's E.3.2 does
        code += "^^^^^^" + _COMM_STATUS[event.kind]
    info = ctx.pump(event.pump_id)
    snapshot = event.snapshot
    n, channel = _find_channel(snapshot, event.channel_id)
    if event.detail.get("reason") in _CLOSING_REASONS and event.previous_channel is not None:
        # A removed channel or a replaced device: the stop is about the channel as it was,
        # at the ordinal it had (reserved, App. A); its state now cannot be observed.
        n = int(event.detail.get("ordinal") or 0) or len(snapshot.channels if snapshot else ()) + 1
        channel = replace(event.previous_channel, state=ChannelState.UNKNOWN, alarms=())
    source = f"1.{n}.2.0" if channel is not None else "1.0.0.0"
    rows = ObxRows()
    mds_rows(rows, snapshot, info, ctx, event_rows=(code, source), identity=identity, observed_at=event.occurred_at)
    if channel is not None:
        transitioning = event.kind is EventKind.DELIVERY_STOP and event.detail.get("reason") == "transitioning"
        if transitioning and event.previous_channel is not None:
            old = event.previous_channel
            channel = replace(
                old,
                channel_id=channel.channel_id,
                state=ChannelState.INFUSING,
                volume_infused=channel.volume_infused or old.volume_infused,
                alarms=(),
            )
            verdicts = None  # the verdicts in hand are the new program's
        delivery_event = event.kind in (EventKind.DELIVERY_START, EventKind.DELIVERY_STOP, EventKind.DELIVERY_COMPLETE)
        channel_rows(
            rows,
            n,
            channel,
            info,
            ctx,
            transitioning=transitioning,
            delivery_event=delivery_event,
            verdicts=(verdicts or {}).get(channel.channel_id, ()),
        )
    drug = escape(channel.drug) if channel is not None and channel.drug else ""
    service = f"^{drug}" if drug else "999999^Medication Unknown"  # B.7 OBR-4
    when = dtm(event.occurred_at, what="OBR-7")
    control_id = ctx.control_ids.next_id()
    obr = f"OBR|1||{_filler(ctx, control_id)}|{service}|||{when}"
    return _assemble(ctx, control_id, event.pump_id, "ORU^R42^ORU_R01", PROFILE_PCD10, "NE", [obr, *rows.segments])


def _find_channel(snapshot: PumpSnapshot | None, channel_id: str | None) -> tuple[int, ChannelSnapshot | None]:
    if snapshot is None or channel_id is None:
        return 0, None
    for n, channel in enumerate(snapshot.channels, start=1):
        if channel.channel_id == channel_id:
            return n, channel
    return 0, None


def encode_pcd04(event: PumpEvent, ctx: EncodeContext, *, identity: PumpIdentity | None = None) -> tuple[str, bytes]:
    """PCD-04 ``ORU^R40^ORU_R40``: one phase of one technical alarm or advisory.

    All seven facets as separate rows with full CWEs (B.8.5; ihe-pcd.md §7.5). OBR-3 of the
    onset is the alert instance id; later phases get their own OBR-3 and point back through
    OBR-29 (B.7.1). OBR-29 stays empty in the onset, which satisfies both TF readings (§7.2).
    """
    phase = _PHASE.get(event.kind)
    if phase is None or event.alarm is None or not event.alert_instance_id:
        raise Hl7EncodeError(
            f"{event.kind}: PCD-04 needs an alarm event with alarm and alert_instance_id",
            field="event",
            pump_id=event.pump_id,
        )
    alarm = event.alarm
    info = ctx.pump(event.pump_id)
    n, channel = _find_channel(event.snapshot, event.channel_id)
    pump_level = alarm.kind in PUMP_LEVEL_ALARM_KINDS
    if pump_level:
        n, channel = 0, None
    prefix = f"1.{n}.2.0" if channel is not None else "1.0.0.0"
    subsystem = (
        "MDC_DEV_PUMP_INFUSATE_SOURCE_PRIMARY"
        if channel is not None
        else ("MDC_DEV_PUMP_INFUS_LVP_MDS" if info.pump_type == "lvp" else "MDC_DEV_PUMP_INFUS_MDS")
    )
    refid = ALARM_EVENTS.get(alarm.kind, "MDC_EVT_ALARM")
    text = escape(alarm.text) or escape(alarm.kind)
    if event.channel_id and channel is None and not pump_level:
        text = f"{text} ({escape(event.channel_id)})".strip()
    event_code = f"{mdc.cwe(refid)}^^^^^^{text}" if text else mdc.cwe(refid)
    priority = _PRIORITY[alarm.priority]
    alert_type = "SA" if alarm.priority is AlarmPriority.ADVISORY else "ST"
    state = "inactive" if event.kind is EventKind.ALARM_END else "active"
    equipment = device_identifier(event.snapshot, info, ctx, identity)
    t = dtm(event.occurred_at, what="OBX-14")
    rows = ObxRows()
    rows.metric("CWE", mdc.cwe("MDC_EVT_ALARM"), prefix + ".1", event_code, status="F", time=t, equipment=equipment)
    rows.metric("CWE", mdc.cwe("MDC_ATTR_ALERT_SOURCE"), prefix + ".2", mdc.cwe(subsystem), status="F")
    rows.metric("ST", mdc.cwe("MDC_ATTR_EVENT_PHASE"), prefix + ".3", phase, status="F")
    rows.metric("ST", mdc.cwe("MDC_ATTR_ALARM_STATE"), prefix + ".4", state, status="F")
    rows.metric("ST", mdc.cwe("MDC_ATTR_ALARM_INACTIVATION_STATE"), prefix + ".5", "enabled", status="F")
    rows.metric("ST", mdc.cwe("MDC_ATTR_ALARM_PRIORITY"), prefix + ".6", priority, status="F")
    rows.metric("ST", mdc.cwe("MDC_ATTR_ALERT_TYPE"), prefix + ".7", alert_type, status="F")
    control_id = ctx.control_ids.next_id()
    packaged = dtm(ctx.clock(), what="OBR-7")  # B.7.1: OBR-7 = when the AR packaged the report
    if event.kind is EventKind.ALARM_ONSET:
        obr = f"OBR|1||{_filler(ctx, event.alert_instance_id)}|196616^MDC_EVT_ALARM^MDC|||{packaged}"
    else:
        parent = "&".join(_filler(ctx, event.alert_instance_id).split("^"))
        obr = f"OBR|1||{_filler(ctx, control_id)}|196616^MDC_EVT_ALARM^MDC|||{packaged}" + "|" * 22 + f"^{parent}"
    return _assemble(
        ctx, control_id, event.pump_id, "ORU^R40^ORU_R40", PROFILE_PCD04, ctx.pcd04_msh16, [obr, *rows.segments]
    )
