"""JSON payloads of the MQTT topics, as versioned pydantic models.

Every payload carries ``schema_version``; a consumer that sees a version it does not know
should ignore the message rather than guess. The JSON Schemas in
``config/schema/mqtt-*.schema.json`` are generated from these models (``pumpgw schema``).

Numbers keep their exact pump digits as strings in fixed notation (``"15.4"``), because a
dashboard that re-rounds a rate shows a value the pump never displayed. Times are ISO 8601
with their UTC offset (design.md §2 inv. 5); a naive time is refused.

Patient identifiers (design.md §2 inv. 7) never appear in topics. In payloads they appear
only when ``mqtt.include_patient_ids`` is set: the ``patient`` object, and any key of
:data:`PATIENT_ID_KEYS` inside an event's ``detail`` or a verdict, are dropped otherwise.
The pump's raw status text is never published (it may echo a patient name).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from drivers.model import Alarm, ChannelSnapshot, PumpIdentity, PumpSnapshot, Quantity
from gateway.errors import BadInput
from gateway.events.model import EventKind, PumpEvent

SCHEMA_VERSION = 1
# Version 2 (issue 17, traceability): events gain the kinds device_swapped, firmware_changed,
# pump_library_changed, device_returned, identity_unreadable; the inventory gains per pump
# asset_tag, udi, first_seen, bed (and keeps last_seen), and the gateway's ward. Additive: a
# version-1 consumer that ignores unknown fields and kinds keeps working.
TRACE_SCHEMA_VERSION = 2

Availability = Literal["online", "offline", "comm-lost"]

PATIENT_ID_KEYS = frozenset(
    {
        "patient",
        "patient_id",
        "patient_ids",
        "patient_name",
        "patient_identifier",
        "mrn",
        "medical_record_number",
        "visit_number",
        "account_number",
        "date_of_birth",
        "birth_date",
    }
)


class PayloadError(BadInput):
    """A payload could not be built from the data given (naive time, non-finite number ...)."""

    def __init__(self, pump_id: str, what: str, problems: str) -> None:
        self.pump_id = pump_id
        self.what = what
        self.problems = problems
        super().__init__(f"pump {pump_id}: cannot build the MQTT {what} payload: {problems}")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuantityModel(_Payload):
    value: str = Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$", description="Exact decimal digits as the pump reported.")
    unit: str = Field(description="UCUM unit, e.g. 'mL/h'.")


class AlarmModel(_Payload):
    code: str = Field(description="The protocol's own alarm code.")
    kind: str = Field(description="pumpgw's protocol-independent alarm name, e.g. 'occlusion'.")
    text: str
    priority: Literal["high", "medium", "low", "advisory"]


class ChannelModel(_Payload):
    channel: str
    state: Literal["infusing", "kvo", "paused", "stopped", "idle", "alarm", "unknown"]
    rate: QuantityModel | None = None
    vtbi: QuantityModel | None = None
    volume_infused: QuantityModel | None = None
    drug: str | None = None
    concentration: QuantityModel | None = None
    dose_rate: QuantityModel | None = None
    care_area: str | None = None
    patient_weight: QuantityModel | None = None
    alarms: list[AlarmModel] = Field(default_factory=list)


class IdentityModel(_Payload):
    manufacturer: str
    model: str
    serial_number: str | None = None
    firmware: str | None = None
    drug_library_version: str | None = None


class StatePayload(_Payload):
    """``.../pumps/{pump}/state``: the newest normalized state, retained."""

    schema_version: Literal[1] = SCHEMA_VERSION
    pump: str
    received_at: AwareDatetime = Field(description="Gateway clock when the pump's reply arrived.")
    device_time: AwareDatetime | None = Field(default=None, description="The pump's own clock, if reported.")
    identity: IdentityModel
    channels: list[ChannelModel]
    verdicts: list[dict[str, Any]] = Field(
        default_factory=list, description="Drug-library verdicts of the running programs."
    )
    patient: dict[str, str] | None = Field(default=None, description="Only with mqtt.include_patient_ids.")


class EventPayload(_Payload):
    """``.../pumps/{pump}/events``: one infusion/device event, QoS 1, not retained."""

    schema_version: Literal[2] = TRACE_SCHEMA_VERSION
    message_id: str = Field(description="Stable id of this event: deduplicates QoS 1 redeliveries.")
    pump: str
    kind: Literal[tuple(k.value for k in EventKind)]  # type: ignore[valid-type]
    occurred_at: AwareDatetime = Field(description="When it happened at the pump, not when it was sent.")
    channel: str | None = None
    channel_state: ChannelModel | None = Field(default=None, description="The channel as the event revealed it.")
    previous_identity: IdentityModel | None = None
    detail: dict[str, str] = Field(default_factory=dict)


class AlarmPayload(_Payload):
    """``.../pumps/{pump}/alarms``: alarm onset/continue/end, QoS 1, not retained."""

    schema_version: Literal[1] = SCHEMA_VERSION
    message_id: str = Field(description="Stable id of this message: deduplicates QoS 1 redeliveries.")
    pump: str
    phase: Literal["onset", "continue", "end"]
    alert_instance_id: str | None = Field(default=None, description="Stable from onset to end.")
    occurred_at: AwareDatetime
    channel: str | None = None
    alarm: AlarmModel | None = None
    detail: dict[str, str] = Field(default_factory=dict)


class AvailabilityPayload(_Payload):
    """``.../pumps/{pump}/availability``, retained."""

    schema_version: Literal[1] = SCHEMA_VERSION
    pump: str
    availability: Availability
    since: AwareDatetime


class InventoryEntry(_Payload):
    pump: str
    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware: str | None = None
    drug_library_version: str | None = None
    udi: str | None = Field(default=None, description="Full human-readable UDI, where known.")
    asset_tag: str | None = Field(default=None, description="The hospital's inventory number from the configuration.")
    bed: str | None = Field(default=None, description="Bed/location label of the slot (configuration).")
    first_seen: AwareDatetime | None = Field(default=None, description="This device first seen in this slot.")
    last_seen: AwareDatetime | None = None


class InventoryPayload(_Payload):
    """``.../inventory``: identity, firmware and library version of every pump, retained."""

    schema_version: Literal[2] = TRACE_SCHEMA_VERSION
    site: str
    gateway: str
    ward: str | None = Field(default=None, description="The gateway's ward.")
    generated_at: AwareDatetime
    central_library_version: str | None = Field(default=None, description="Library version the gateway checks against.")
    pumps: list[InventoryEntry]


class StatusPayload(_Payload):
    """``.../status``: birth ("online") and Last Will / clean shutdown ("offline"), retained.

    ``session`` is the same in a connection's birth and its Last Will, so a consumer drops an
    "offline" whose session is not the current one (a late will overtaking a new birth).

    "online" is republished every ``heartbeat_interval_s`` with a fresh ``heartbeat_at`` and
    an MQTT 5 message expiry of ``stale_after_intervals`` intervals: a gateway that died
    without its will reaching anyone stops looking alive (docs/mqtt.md, "Gateway status").
    ``since`` is when the state began: the birth for "online", the stop for a clean
    "offline"; in the Last Will it is null, because the will is written at connect time and
    the time of death is only known to the broker -- it is when the will arrives, at most
    1.5 keep-alives after the last heartbeat_at.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    state: Literal["online", "offline"]
    site: str
    gateway: str
    version: str
    config_hash: str
    session: str
    since: AwareDatetime | None
    ward: str | None = None
    heartbeat_interval_s: float | None = None
    heartbeat_at: AwareDatetime | None = None
    cause: Literal["birth", "heartbeat", "stop", "will"] | None = None


class GatewayAlertPayload(_Payload):
    """``.../alerts``: a technical alert of the gateway itself, QoS 1, not retained.

    E.g. ``outbox_budget_thinned``, ``message_quarantined``, ``messages_expired``,
    ``drug_library_refused``. ``details`` never carries patient identifiers.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    message_id: str
    alert: str
    gateway: str
    occurred_at: AwareDatetime
    details: dict[str, str]


PAYLOAD_MODELS: dict[str, type[BaseModel]] = {
    "mqtt-state.schema.json": StatePayload,
    "mqtt-event.schema.json": EventPayload,
    "mqtt-alarm.schema.json": AlarmPayload,
    "mqtt-availability.schema.json": AvailabilityPayload,
    "mqtt-inventory.schema.json": InventoryPayload,
    "mqtt-status.schema.json": StatusPayload,
    "mqtt-alert.schema.json": GatewayAlertPayload,
}


def _redact(values: Mapping[str, Any], include_patient_ids: bool) -> dict[str, Any]:
    if include_patient_ids:
        return dict(values)
    return {k: v for k, v in values.items() if k.lower() not in PATIENT_ID_KEYS}


def _quantity(q: Quantity | None) -> QuantityModel | None:
    if q is None:
        return None
    if not isinstance(q.value, Decimal) or not q.value.is_finite():
        raise ValueError(f"quantity {q.value!r} {q.unit} is not a finite Decimal")
    return QuantityModel(value=format(q.value, "f"), unit=q.unit)


def _alarm(a: Alarm) -> AlarmModel:
    return AlarmModel(code=a.code, kind=a.kind, text=a.text, priority=a.priority.value)


def _channel(c: ChannelSnapshot) -> ChannelModel:
    return ChannelModel(
        channel=c.channel_id,
        state=c.state.value,
        rate=_quantity(c.rate),
        vtbi=_quantity(c.vtbi),
        volume_infused=_quantity(c.volume_infused),
        drug=c.drug,
        concentration=_quantity(c.concentration),
        dose_rate=_quantity(c.dose_rate),
        care_area=c.care_area,
        patient_weight=_quantity(c.patient_weight),
        alarms=[_alarm(a) for a in c.alarms],
    )


def _identity(i: PumpIdentity) -> IdentityModel:
    return IdentityModel(
        manufacturer=i.manufacturer,
        model=i.model,
        serial_number=i.serial_number,
        firmware=i.firmware,
        drug_library_version=i.drug_library_version,
    )


def _entry_fields(i: PumpIdentity) -> dict[str, Any]:
    return {**_identity(i).model_dump(), "udi": i.udi}


_IDENTITY_KEYS = ("manufacturer", "model", "serial_number", "firmware", "drug_library_version", "udi")


def _build(pump_id: str, what: str, build: Any) -> bytes:
    try:
        model = build()
    except (ValidationError, ValueError) as exc:
        raise PayloadError(pump_id, what, str(exc)) from exc
    return model.model_dump_json().encode("utf-8")


def event_message_id(event: PumpEvent) -> str:
    """A deterministic id, so re-deriving the same event yields the same id (idempotent consumers)."""
    parts = (
        event.pump_id,
        event.kind.value,
        event.occurred_at.isoformat(),
        event.channel_id or "",
        event.alert_instance_id or "",
        event.alarm.code if event.alarm else "",
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def state_payload(
    snapshot: PumpSnapshot,
    *,
    verdicts: Sequence[Mapping[str, Any]] | None,
    include_patient_ids: bool,
    patient: Mapping[str, str] | None = None,
) -> bytes:
    def build() -> StatePayload:
        return StatePayload(
            pump=snapshot.pump_id,
            received_at=snapshot.received_at,
            device_time=snapshot.device_time,
            identity=_identity(snapshot.identity),
            channels=[_channel(c) for c in snapshot.channels],
            verdicts=[_redact(v, include_patient_ids) for v in verdicts or ()],
            patient=dict(patient) if (patient and include_patient_ids) else None,
        )

    return _build(snapshot.pump_id, "state", build)


def _event_channel(event: PumpEvent) -> ChannelModel | None:
    if event.snapshot is None or event.channel_id is None:
        return None
    for c in event.snapshot.channels:
        if c.channel_id == event.channel_id:
            return _channel(c)
    return None


def event_payload(event: PumpEvent, *, include_patient_ids: bool = False, message_id: str | None = None) -> bytes:
    if event.is_alarm:
        raise PayloadError(event.pump_id, "event", f"{event.kind.value} is an alarm: use alarm_payload")

    def build() -> EventPayload:
        return EventPayload(
            message_id=message_id or event_message_id(event),
            pump=event.pump_id,
            kind=event.kind.value,
            occurred_at=event.occurred_at,
            channel=event.channel_id,
            channel_state=_event_channel(event),
            previous_identity=_identity(event.previous_identity) if event.previous_identity else None,
            detail=_redact(event.detail, include_patient_ids),
        )

    return _build(event.pump_id, "event", build)


_PHASES = {EventKind.ALARM_ONSET: "onset", EventKind.ALARM_CONTINUE: "continue", EventKind.ALARM_END: "end"}


def alarm_payload(event: PumpEvent, *, include_patient_ids: bool = False, message_id: str | None = None) -> bytes:
    if not event.is_alarm:
        raise PayloadError(event.pump_id, "alarm", f"{event.kind.value} is not an alarm: use event_payload")

    def build() -> AlarmPayload:
        return AlarmPayload(
            message_id=message_id or event_message_id(event),
            pump=event.pump_id,
            phase=_PHASES[event.kind],
            alert_instance_id=event.alert_instance_id,
            occurred_at=event.occurred_at,
            channel=event.channel_id,
            alarm=_alarm(event.alarm) if event.alarm else None,
            detail=_redact(event.detail, include_patient_ids),
        )

    return _build(event.pump_id, "alarm", build)


def availability_payload(pump_id: str, availability: Availability, *, since: datetime) -> bytes:
    return _build(
        pump_id, "availability", lambda: AvailabilityPayload(pump=pump_id, availability=availability, since=since)
    )


def inventory_payload(
    *,
    site: str,
    gateway: str,
    identities: Mapping[str, PumpIdentity | None],
    last_seen: Mapping[str, datetime],
    generated_at: datetime,
    central_library_version: str | None = None,
    ward: str | None = None,
    slots: Mapping[str, Mapping[str, Any]] | None = None,
) -> bytes:
    """One entry per pump id in ``identities`` (``None``: configured but never identified).

    ``slots`` adds per pump what the identity registry knows (asset_tag, bed, first_seen, and
    the identity itself for a pump not yet polled in this run)."""
    slots = slots or {}

    def entry(pump_id: str, ident: PumpIdentity | None) -> InventoryEntry:
        extra = dict(slots.get(pump_id, {}))
        fields = _entry_fields(ident) if ident else {k: extra.pop(k, None) for k in _IDENTITY_KEYS}
        for key in _IDENTITY_KEYS:
            extra.pop(key, None)
        seen = last_seen.get(pump_id) or extra.pop("last_seen", None)
        extra.pop("last_seen", None)
        return InventoryEntry(pump=pump_id, last_seen=seen, **fields, **extra)

    return _build(
        gateway,
        "inventory",
        lambda: InventoryPayload(
            site=site,
            gateway=gateway,
            generated_at=generated_at,
            central_library_version=central_library_version,
            ward=ward,
            pumps=[entry(p, i) for p, i in sorted(identities.items())],
        ),
    )


def status_payload(
    *,
    state: Literal["online", "offline"],
    site: str,
    gateway: str,
    version: str,
    config_hash: str,
    session: str,
    since: datetime | None,
    ward: str | None = None,
    heartbeat_interval_s: float | None = None,
    heartbeat_at: datetime | None = None,
    cause: Literal["birth", "heartbeat", "stop", "will"] | None = None,
) -> bytes:
    return _build(
        gateway,
        "status",
        lambda: StatusPayload(
            state=state,
            site=site,
            gateway=gateway,
            version=version,
            config_hash=config_hash,
            session=session,
            since=since,
            ward=ward,
            heartbeat_interval_s=heartbeat_interval_s,
            heartbeat_at=heartbeat_at,
            cause=cause,
        ),
    )


def gateway_alert_payload(
    *, message_id: str, alert: str, gateway: str, occurred_at: datetime, details: Mapping[str, object]
) -> bytes:
    return _build(
        gateway,
        "alert",
        lambda: GatewayAlertPayload(
            message_id=message_id,
            alert=alert,
            gateway=gateway,
            occurred_at=occurred_at,
            details={str(k): str(v) for k, v in details.items()},
        ),
    )
