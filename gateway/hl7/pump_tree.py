"""The OBX rows of one infusion pump in the IPEC "Infusion Pump Model" (TF2-R10 App. M).

One tree serves PCD-01 and PCD-10 (ihe-pcd.md §6.4): PCD-01 carries every channel, PCD-10
the MDS rows, the two event rows and the one channel the event happened on.

    1.0.0.0   MDS  (OBX-18 = device identity)
    1.0.0.k        drug library version, [event condition, event source], device clock
    1.n.0.0   VMD  one per pump channel/module ("multiple delivery channels shall define
                   multiple infusor VMD instances", TF3-R10 §7.1)
    1.n.1.0   CHAN delivery info: infusing status, current flow, active sources
    1.n.2.0   CHAN primary infusate source: delivery status, label, settings, volumes, drug

Only what the pump reported is sent: no computed remaining volume or time ("The DOR shall
not do interpolation", TF2-R10 §3.1.4.1.3). Settings carry OBX-17 MSET, measurements
AMEAS (Table B.8.6-2). Row numbers are assigned in order, so the tree is in dictionary
order by construction (B.8.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from common.pcd import mdc
from drivers.model import ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity
from gateway.hl7.context import EncodeContext, PumpInfo
from gateway.hl7.er7 import device_dtm, dtm, escape, number
from gateway.hl7.identity_rows import identity_rows

_INFUSING = {ChannelState.INFUSING: "pump-status-infusing", ChannelState.KVO: "pump-status-infusing"}
_DELIVERY_STATUS = {
    ChannelState.INFUSING: "pump-delivery-status-delivering",
    ChannelState.KVO: "pump-delivery-status-kvo",
    ChannelState.PAUSED: "pump-delivery-status-not-delivering",
    ChannelState.STOPPED: "pump-delivery-status-not-delivering",
    ChannelState.IDLE: "pump-delivery-status-not-delivering",
    ChannelState.ALARM: "pump-delivery-status-not-delivering",
}
_NOT_DELIVERING_REASON = {
    ChannelState.ALARM: "pump-stopped-alarming",
    ChannelState.PAUSED: "pump-stopped-not-specified",
    ChannelState.STOPPED: "pump-stopped-not-specified",
    ChannelState.IDLE: "pump-stopped-not-specified",
}
_NOT_DELIVERING = frozenset(_NOT_DELIVERING_REASON)

_MDS = {"generic": "MDC_DEV_PUMP_INFUS_MDS", "lvp": "MDC_DEV_PUMP_INFUS_LVP_MDS"}
_VMD = {"generic": "MDC_DEV_PUMP_INFUS_VMD", "lvp": "MDC_DEV_PUMP_INFUS_LVP_VMD"}
# Precomputed OBX-3 values: the hot path only looks them up.
_C = {refid: f"{code}^{refid}^MDC" for refid, code in mdc.TERMS.items() if code is not None}
_NOT_DELIVERING_REASON_CODE = mdc.cwe("MDC_DEV_PUMP_NOT_DELIVERING_REASON")  # unpublished: 0^REFID^MDC


@lru_cache(maxsize=256)
def unit_cwe(unit: str) -> str:
    """OBX-6: MDC first, UCUM as the alternate triplet (M.1.2.2); UCUM alone if unmapped."""
    known = mdc.UNITS.get(unit)
    u = escape(unit)
    if known is None:
        return f"{u}^{u}^UCUM"
    return f"{known[0]}^{known[1]}^MDC^{u}^{u}^UCUM"


class ObxRows:
    """Accumulates OBX segments with OBX-1 numbered through the whole message (B.8 OBX-1)."""

    __slots__ = ("segments", "n")

    def __init__(self) -> None:
        self.segments: list[str] = []
        self.n = 0

    def device(self, code: str, sub: str, equipment: str = "") -> None:
        self.n += 1
        tail = f"|||||||{equipment}" if equipment else ""
        self.segments.append(f"OBX|{self.n}||{code}|{sub}|||||||X{tail}")

    def metric(
        self,
        vt: str,
        code: str,
        sub: str,
        value: str,
        unit: str = "",
        *,
        status: str = "R",
        time: str = "",
        category: str = "",
        equipment: str = "",
    ) -> None:
        self.n += 1
        seg = f"OBX|{self.n}|{vt}|{code}|{sub}|{value}|{unit}|||||{status}|||{time}|||{category}|{equipment}"
        self.segments.append(seg.rstrip("|"))

    def simple(self, vt: str, code: str, sub: str, value: str, category: str = "") -> None:
        """A metric row with neither units nor time (the common case, kept cheap)."""
        self.n += 1
        if category:
            self.segments.append(f"OBX|{self.n}|{vt}|{code}|{sub}|{value}||||||R||||||{category}")
        else:
            self.segments.append(f"OBX|{self.n}|{vt}|{code}|{sub}|{value}||||||R")

    def verdict(self, vt: str, code: str, sub: str, value: str, unit: str, flag: str) -> None:
        """A derived row (OBX-11 F: final, computed by the gateway) with an OBX-8 flag."""
        self.n += 1
        self.segments.append(f"OBX|{self.n}|{vt}|{code}|{sub}|{value}|{unit}||{flag}|||F")

    def quantity(self, refid: str, sub: str, q: Quantity, category: str) -> None:
        self.n += 1
        self.segments.append(
            f"OBX|{self.n}|NM|{_C[refid]}|{sub}|{number(q.value, what=refid)}|{unit_cwe(q.unit)}|||||R||||||{category}"
        )


def device_identifier(
    snapshot: PumpSnapshot | None, info: PumpInfo, ctx: EncodeContext, identity: PumpIdentity | None = None
) -> str:
    """OBX-18 at MDS level (B.8 OBX-18, C.5): one stable identity per pump, never the gateway's.

    ``identity`` is the pump's *known* identity (the event tracker's, kept across polls and
    restarts); without it the snapshot's. Entity id = the pump's serial number, or its
    configured id when the protocol cannot read one. With the pump's own EUI-64 (configured)
    the preferred form ``<serial>^^<EUI-64>^EUI-64``; otherwise the legacy form
    ``<serial>^<model>^<manufacturer id>^<type>`` -- the configured ``legacy_universal_id``
    (e.g. ``bbraun.com``/``DNS``) or the manufacturer's name as a local id (``L``). The
    gateway's EUI-64 belongs to MSH-3 and OBR-3, not to a pump (design.md; issue 12).
    """
    if identity is None and snapshot is not None:
        identity = snapshot.identity
    entity = escape((identity.serial_number if identity and identity.serial_number else None) or info.pump_id)
    if info.eui64 and ctx.device_id_style != "legacy":
        return f"{entity}^^{info.eui64.upper()}^EUI-64"
    if identity is None:
        return entity  # never identified yet: the configured id alone
    universal = info.legacy_universal_id or identity.manufacturer
    kind = info.legacy_universal_id_type if info.legacy_universal_id else "L"
    return f"{entity}^{escape(identity.model)}^{escape(universal)}^{escape(kind)}"


def mds_rows(
    rows: ObxRows,
    snapshot: PumpSnapshot | None,
    info: PumpInfo,
    ctx: EncodeContext,
    event_rows: tuple[str, str] | None = None,
    *,
    identity: PumpIdentity | None = None,
    observed_at: datetime | None = None,
) -> None:
    """1.0.0.x: the MDS and its attributes; ``event_rows`` = (EVT_COND OBX-5, EVT_SOURCE OBX-5).

    The time-synchronisation row ``MDC_ATTR_TIME_ABS`` (B.8.8 "SHALL") is always sent: the
    pump's own clock when it reports one, otherwise the gateway's (NTP) time of the
    observation -- for a pump without a clock the gateway is the time base of every
    timestamp, and the row says so with its UTC offset.
    """
    rows.device(_C[_MDS[info.pump_type]], "1.0.0.0", device_identifier(snapshot, info, ctx, identity))
    k = 0
    library = (snapshot.identity.drug_library_version if snapshot is not None else None) or (
        identity.drug_library_version if identity is not None else None
    )
    if library:
        k += 1
        rows.simple("ST", _C["MDC_PUMP_DRUG_LIBRARY_VERSION"], f"1.0.0.{k}", escape(library))
    if event_rows is not None:
        rows.simple("CWE", _C["MDC_ATTR_EVT_COND"], f"1.0.0.{k + 1}", event_rows[0])
        rows.simple("ST", _C["MDC_ATTR_EVT_SOURCE"], f"1.0.0.{k + 2}", event_rows[1])
        k += 2
    if snapshot is not None and snapshot.device_time is not None:
        k += 1
        rows.simple("DTM", _C["MDC_ATTR_TIME_ABS"], f"1.0.0.{k}", device_dtm(snapshot.device_time))
    else:
        gateway_time = snapshot.received_at if snapshot is not None else observed_at
        if gateway_time is not None:
            k += 1
            rows.simple("DTM", _C["MDC_ATTR_TIME_ABS"], f"1.0.0.{k}", dtm(gateway_time, what="MDC_ATTR_TIME_ABS"))
    if event_rows is None:  # PCD-01: model, serial/firmware, asset tag (traceability); PCD-10 keeps the TF's rows
        identity_rows(rows, snapshot, info, k)


def channel_rows(
    rows: ObxRows,
    n: int,
    ch: ChannelSnapshot,
    info: PumpInfo,
    ctx: EncodeContext,
    *,
    transitioning: bool = False,
    delivery_event: bool = False,
    verdicts: Sequence[Any] = (),
) -> None:
    """1.n.x.x: one VMD with its delivery-info and primary-source channels.

    ``transitioning``: the stop half of a titration (Table M.1.2.1-4): the channel is the old
    program, still flowing at the old rate, with ``pump-delivery-status-transitioning``.
    ``delivery_event``: a PCD-10 start/stop/complete, for which Table M.1.2.1-1 requires all
    three delivery-info parameters: the active source is then always sent, and in KVO the
    current flow row is sent flagged ``NAV`` (no protocol reports the KVO rate; no guessing).

    ``verdicts`` are drug-library verdict rows (``gateway.hl7.verdict_rows.verdict_observations``) for
    this channel; they follow the source channel's metrics, their relative sub-ids ``k`` and
    ``k.j`` becoming ``1.n.2.<m+k>`` and ``1.n.2.<m+k>.j`` (docs/drug-library.md §6).
    """
    pending = ctx.unpublished_codes == "pending"
    rows.device(_C[_VMD[info.pump_type]], f"1.{n}.0.0")
    rows.device(_C["MDC_DEV_PUMP_DELIVERY_INFO"], f"1.{n}.1.0")
    state = ch.state
    m = 0
    if state is not ChannelState.UNKNOWN:
        m += 1
        rows.simple(
            "CWE",
            _C["MDC_PUMP_INFUSING_STATUS"],
            f"1.{n}.1.{m}",
            "^" + _INFUSING.get(state, "pump-status-not-infusing"),
        )
        flow = ch.rate if state is ChannelState.INFUSING else None
        if state in _NOT_DELIVERING and ch.rate is not None:
            flow = Quantity(ch.rate.value * 0, ch.rate.unit)  # stopped: current flow is zero
        if flow is not None:
            m += 1
            rows.metric(
                "NM",
                _C["MDC_FLOW_FLUID_PUMP_CURRENT"],
                f"1.{n}.1.{m}",
                number(flow.value, what="MDC_FLOW_FLUID_PUMP_CURRENT"),
                unit_cwe(flow.unit),
                category=mdc.CATEGORY_AUTO_MEASUREMENT,
            )
        elif state is ChannelState.KVO and delivery_event:
            m += 1
            rows.n += 1
            rows.segments.append(
                f"OBX|{rows.n}|NM|{_C['MDC_FLOW_FLUID_PUMP_CURRENT']}|1.{n}.1.{m}||||NAV|||X"
                f"||||||{mdc.CATEGORY_AUTO_MEASUREMENT}"
            )
        if state in _INFUSING or delivery_event:
            m += 1
            rows.simple("CWE", _C["MDC_DEV_PUMP_ACTIVE_SOURCES"], f"1.{n}.1.{m}", "^pump-source-info-primary")
    rows.device(_C["MDC_DEV_PUMP_INFUSATE_SOURCE_PRIMARY"], f"1.{n}.2.0")
    p = f"1.{n}.2."
    m = 0
    if state is not ChannelState.UNKNOWN:
        m += 1
        status = "pump-delivery-status-transitioning" if transitioning else _DELIVERY_STATUS[state]
        rows.simple("CWE", _C["MDC_DEV_PUMP_CURRENT_DELIVERY_STATUS"], p + str(m), "^" + status)
    m += 1
    rows.simple("ST", _C["MDC_DEV_PUMP_SOURCE_CHANNEL_LABEL"], p + str(m), escape(ch.channel_id) or str(n))
    if state in _NOT_DELIVERING and not transitioning:
        code = _NOT_DELIVERING_REASON_CODE if pending else None
        if code is not None:
            m += 1
            rows.simple("CWE", code, p + str(m), "^" + _NOT_DELIVERING_REASON[state])
    setting = mdc.CATEGORY_MANUAL_SETTING
    for refid, q, category in (
        ("MDC_FLOW_FLUID_PUMP", ch.rate, setting),
        ("MDC_RATE_DOSE", ch.dose_rate, setting),
        ("MDC_VOL_FLUID_TBI", ch.vtbi, setting),
        ("MDC_VOL_FLUID_DELIV_TOTAL", ch.volume_infused, mdc.CATEGORY_AUTO_MEASUREMENT),
    ):
        if q is not None:
            m += 1
            rows.quantity(refid, p + str(m), q, category)
    drug = escape(ch.drug) if ch.drug else ""
    if drug:
        m += 1
        rows.simple("ST", _C["MDC_DRUG_NAME_LABEL"], p + str(m), drug, setting)
    if ch.concentration is not None:
        m += 1
        rows.quantity("MDC_CONC_DRUG", p + str(m), ch.concentration, setting)
    care_area = escape(ch.care_area or "") or escape(info.care_area)
    if care_area:
        m += 1
        rows.simple("ST", _C["MDC_PUMP_DRUG_LIBRARY_CARE_AREA"], p + str(m), care_area, setting)
    if ch.patient_weight is not None:
        m += 1
        rows.quantity("MDC_ATTR_PT_WEIGHT", p + str(m), ch.patient_weight, setting)
    for v in verdicts:
        head, _, facet = v.sub_id.partition(".")
        sub = p + str(m + int(head)) + (f".{facet}" if facet else "")
        code = f"{v.code}^{v.mnemonic}^{v.coding_system}"
        if isinstance(v.value, tuple):
            value = "^".join(escape(part) for part in v.value)
        elif v.value_type == "NM":
            value = v.value
        else:
            value = escape(v.value)
        rows.verdict(v.value_type, code, sub, value, unit_cwe(v.unit) if v.unit else "", v.abnormal_flag)
