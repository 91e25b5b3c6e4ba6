"""Every lane's bytes for one event, rendered without I/O (design.md §2 inv. 10).

For one pump event the renderer produces the HL7 message of each destination that takes it
(PCD-04 on the destination's alarm lane, PCD-10 on its data lane; MSH-5/6 name the
receiver, so the bytes differ per destination) and the MQTT event or alarm payload. Nothing
here touches the outbox: the pipeline commits the result in one transaction with the pump's
clinical state, and a retry of that commit reuses these exact objects (same bytes, same
MSH-10).

An event one lane cannot encode (``Hl7EncodeError``, ``UnpublishedCodeError``, or any bug in
an encoder) is refused *for that lane only* and reported back as a :class:`Refusal`; it never
holds back the other lanes or the next event. Re-encoding the same input would fail the same
way, so it is not retried (gateway/hl7/errors.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from drivers.model import PumpIdentity, PumpSnapshot
from gateway.config.model import GatewayConfig, MessageKind, MllpDestination
from gateway.errors import BadInput
from gateway.events.model import PumpEvent
from gateway.hl7 import (
    PCD10_EVENTS,
    ControlIdGenerator,
    EncodeContext,
    PumpInfo,
    encode_pcd01,
    encode_pcd04,
    encode_pcd10,
)
from gateway.hl7.context import PatientIdentity
from gateway.identity import Change, SlotRecord
from gateway.lanes import lane_for
from gateway.outbox.model import NewMessage


def routes_of(config: GatewayConfig) -> dict[MessageKind, list[MllpDestination]]:
    """Which destinations take which message kind."""
    return {kind: [d for d in config.destinations if kind in d.messages] for kind in get_args(MessageKind)}


def encode_contexts(
    config: GatewayConfig,
    control_ids: ControlIdGenerator,
    processing_id: Literal["P", "D"],
    *,
    pumps: Mapping[str, PumpInfo],
    patients: Mapping[str, PatientIdentity],
) -> dict[str, EncodeContext]:
    """One encoding context per destination: MSH-5/6 name the receiver. ``pumps`` and
    ``patients`` are shared, live mappings: a pump or patient added later is seen by all."""
    g = config.gateway
    return {
        d.name: EncodeContext(
            site=g.site,
            ward=g.ward,
            gateway_id=g.gateway_id,
            eui64=g.eui64,
            country=g.country,
            control_ids=control_ids,
            receiving_application=d.receiving_application,
            receiving_facility=d.receiving_facility,
            processing_id=processing_id,
            pumps=pumps,
            patients=patients,
        )
        for d in config.destinations
    }


class EventRenderer(Protocol):
    """What the MQTT side contributes: its payload for an event, rendered without I/O."""

    def render_event(self, event: PumpEvent) -> NewMessage: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """One lane that could not encode one message; logged at ERROR and alerted by the caller."""

    lane: str
    kind: MessageKind | Literal["mqtt-alarm", "mqtt-event"]
    error: Exception


def _hl7_kind(event: PumpEvent) -> Literal["pcd04", "pcd10"] | None:
    """The HL7 message an event is documented by, if any (an identity change has none)."""
    if event.is_alarm:
        return "pcd04"
    if event.kind in PCD10_EVENTS:
        return "pcd10"
    return None


class Renderer:
    def __init__(
        self,
        routes: Mapping[MessageKind, Sequence[MllpDestination]],
        contexts: Mapping[str, EncodeContext],
        mqtt: EventRenderer | None = None,
    ) -> None:
        self._routes = routes
        self._contexts = contexts
        self._mqtt = mqtt

    def event(
        self,
        event: PumpEvent,
        *,
        identity: PumpIdentity | None,
        verdicts: Mapping[str, Sequence[Any]] | None,
    ) -> tuple[list[NewMessage], list[Refusal]]:
        out: list[NewMessage] = []
        refused: list[Refusal] = []
        kind = _hl7_kind(event)
        if kind is not None:
            for dest in self._routes.get(kind, ()):
                lane = lane_for(dest, kind)
                try:
                    ctx = self._contexts[dest.name]
                    if kind == "pcd04":
                        control_id, payload = encode_pcd04(event, ctx, identity=identity)
                    else:
                        control_id, payload = encode_pcd10(event, ctx, verdicts=verdicts, identity=identity)
                except Exception as exc:  # noqa: BLE001 - any encoder failure refuses this lane only
                    refused.append(Refusal(lane, kind, exc))
                    continue
                out.append(NewMessage(lane, kind, control_id, payload, dest.ttl_s[kind]))
        if self._mqtt is not None:
            try:
                out.append(self._mqtt.render_event(event))
            except Exception as exc:  # noqa: BLE001
                refused.append(Refusal("mqtt", "mqtt-alarm" if event.is_alarm else "mqtt-event", exc))
        return out, refused

    def pcd01(
        self,
        snapshot: PumpSnapshot,
        *,
        pump_id: str,
        identity: PumpIdentity | None,
        verdicts: Mapping[str, Sequence[Any]] | None,
    ) -> tuple[list[NewMessage], list[Refusal]]:
        out: list[NewMessage] = []
        refused: list[Refusal] = []
        for dest in self._routes.get("pcd01", ()):
            lane = lane_for(dest, "pcd01")
            try:
                control_id, payload = encode_pcd01(
                    snapshot, self._contexts[dest.name], pump_id=pump_id, verdicts=verdicts, identity=identity
                )
            except Exception as exc:  # noqa: BLE001 - periodic data: the next interval brings a new one
                refused.append(Refusal(lane, "pcd01", exc))
                continue
            out.append(NewMessage(lane, "pcd01", control_id, payload, dest.ttl_s["pcd01"]))
        return out, refused

    def dmc(
        self, record: SlotRecord, changes: Sequence[Change], *, ward: str, bed: str
    ) -> tuple[list[NewMessage], list[Refusal]]:
        """The device-management report (identity changes) for each destination that takes ``dmc``."""
        from gateway.hl7.dmc import encode_dmc  # only ward configs with a CMMS destination use it

        out: list[NewMessage] = []
        refused: list[Refusal] = []
        for dest in self._routes.get("dmc", ()):
            lane = lane_for(dest, "dmc")
            try:
                control_id, payload = encode_dmc(record, changes, self._contexts[dest.name], ward=ward, bed=bed)
            except BadInput as exc:  # a device report that cannot be encoded never holds pump data back
                refused.append(Refusal(lane, "dmc", exc))
                continue
            out.append(NewMessage(lane, "dmc", control_id, payload, dest.ttl_s["dmc"]))
        return out, refused
