"""The JSON payloads of the MQTT topics, as versioned pydantic models: the published contract.

The JSON Schemas in ``config/schema/mqtt-*.schema.json`` are generated from these models
(``pumpgw schema``; ``tests/gateway/config/test_schema_sync.py`` fails when they drift), and
the fleet reads the gateways through those schemas only (design.md §7). So every field is
typed here, drug-library verdicts included: what a consumer may rely on is exactly what the
schema says. Builders from the gateway's own objects live in :mod:`gateway.mqtt.payloads`.

Every payload carries ``schema_version``; a consumer that sees a version it does not know
should ignore the message rather than guess. Numbers keep their exact digits as strings in
fixed notation (``"15.4"``), because a dashboard that re-rounds a rate shows a value the pump
never displayed. Times are ISO 8601 with their UTC offset (design.md §2 inv. 5); a naive time
is refused.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gateway.druglib.verdicts import Severity, VerdictKind
from gateway.events.model import EventKind

SCHEMA_VERSION: Final = 1
# Version 2 (issue 17, traceability): events gain the kinds device_swapped, firmware_changed,
# pump_library_changed, device_returned, identity_unreadable; the inventory gains per pump
# asset_tag, udi, first_seen, bed (and keeps last_seen), and the gateway's ward. Additive: a
# version-1 consumer that ignores unknown fields and kinds keeps working.
TRACE_SCHEMA_VERSION: Final = 2

Availability = Literal["online", "offline", "comm-lost"]
AlarmPhase = Literal["onset", "continue", "end"]
StatusCause = Literal["birth", "heartbeat", "stop", "will"]
GatewayState = Literal["online", "offline"]


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


class VerdictModel(_Payload):
    """One drug-library verdict on a running program (docs/drug-library.md, "Verdicts")."""

    kind: VerdictKind
    severity: Severity
    text: str = Field(description="The verdict in words, as logged and sent in HL7.")
    limit_name: str | None = Field(default=None, description="The limit checked, e.g. 'dose.soft_max'.")
    value: QuantityModel | None = Field(default=None, description="The program's value compared.")
    limit: QuantityModel | None = Field(default=None, description="The limit it was compared with.")
    tolerance: QuantityModel | None = Field(
        default=None, description="Allowance for a dose back-calculated from a rounded rate."
    )
    care_area: str | None = None
    drug: str | None = None
    entry_id: str | None = Field(default=None, description="The library entry checked against.")
    library_version: str
    library_sha256: str


class ChannelVerdictsModel(_Payload):
    """Every verdict on one channel's program; ``severity`` is the worst of them."""

    channel: str
    severity: Severity
    library_version: str
    library_sha256: str
    verdicts: list[VerdictModel]


class StatePayload(_Payload):
    """``.../pumps/{pump}/state``: the newest normalized state, retained."""

    schema_version: Literal[1] = SCHEMA_VERSION
    pump: str
    received_at: AwareDatetime = Field(description="Gateway clock when the pump's reply arrived.")
    device_time: AwareDatetime | None = Field(default=None, description="The pump's own clock, if reported.")
    identity: IdentityModel
    channels: list[ChannelModel]
    verdicts: list[ChannelVerdictsModel] = Field(
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
    phase: AlarmPhase
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
    state: GatewayState
    site: str
    gateway: str
    version: str
    config_hash: str
    session: str
    since: AwareDatetime | None
    ward: str | None = None
    heartbeat_interval_s: float | None = None
    heartbeat_at: AwareDatetime | None = None
    cause: StatusCause | None = None


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


# file name under config/schema/ -> model (``pumpgw schema`` writes them).
PAYLOAD_MODELS: dict[str, type[BaseModel]] = {
    "mqtt-state.schema.json": StatePayload,
    "mqtt-event.schema.json": EventPayload,
    "mqtt-alarm.schema.json": AlarmPayload,
    "mqtt-availability.schema.json": AvailabilityPayload,
    "mqtt-inventory.schema.json": InventoryPayload,
    "mqtt-status.schema.json": StatusPayload,
    "mqtt-alert.schema.json": GatewayAlertPayload,
}
