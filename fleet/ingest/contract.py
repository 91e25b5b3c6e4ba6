"""The part of the gateways' published contract the fleet relies on (copied, never imported).

The fleet cannot import ``gateway`` (design.md §7), so it keeps its own copy of what it reads:
for each topic kind, the schema versions it understands, the JSON Schema file that defines the
payload (``config/schema/``), the fields it reads and which of them it requires. A test
(tests/fleet/test_contract_schemas.py) checks this copy against the published schemas, so a
gateway-side change that breaks the fleet fails there, not in production.

``AGREED_ADDITIONS`` are fields agreed between the teams (inventory/traceability, library
distribution, heartbeat) that a gateway of an older release does not send yet: the fleet reads
them when present and treats them as unknown when absent.
"""

from __future__ import annotations

from dataclasses import dataclass

PATIENT_KEYS = frozenset(
    {
        "patient",
        "patient_id",
        "patient_ids",
        "patient_name",
        "patient_identifier",
        "patient_weight",
        "mrn",
        "medical_record_number",
        "visit_number",
        "account_number",
        "date_of_birth",
        "birth_date",
    }
)
"""Keys dropped wherever they appear (gateways publish them only with include_patient_ids)."""

PATIENT_HINTS = ("patient", "birth", "mrn", "name", "ssn", "personnummer")
"""Any free-form key containing one of these is dropped too: the fleet keeps device data only."""


@dataclass(frozen=True, slots=True)
class PayloadContract:
    schema_file: str | None  # None: defined by another team's document (release), no file here
    versions: frozenset[int]
    reads: frozenset[str]
    requires: frozenset[str]


CONTRACTS: dict[str, PayloadContract] = {
    "status": PayloadContract(
        "mqtt-status.schema.json",
        frozenset({1}),
        frozenset({"schema_version", "state", "site", "gateway", "version", "config_hash", "session", "since"}),
        frozenset({"state", "session", "since"}),
    ),
    "inventory": PayloadContract(
        "mqtt-inventory.schema.json",
        frozenset({1, 2}),
        frozenset({"schema_version", "site", "gateway", "generated_at", "central_library_version", "pumps"}),
        frozenset({"generated_at", "pumps"}),
    ),
    "inventory.pump": PayloadContract(
        "mqtt-inventory.schema.json#InventoryEntry",
        frozenset({1, 2}),
        frozenset({"pump", "manufacturer", "model", "serial_number", "firmware", "drug_library_version", "last_seen"}),
        frozenset({"pump"}),
    ),
    "state": PayloadContract(
        "mqtt-state.schema.json",
        frozenset({1}),
        frozenset({"schema_version", "pump", "received_at", "identity", "channels", "verdicts"}),
        frozenset({"received_at", "identity"}),
    ),
    "availability": PayloadContract(
        "mqtt-availability.schema.json",
        frozenset({1}),
        frozenset({"schema_version", "pump", "availability", "since"}),
        frozenset({"availability", "since"}),
    ),
    "events": PayloadContract(
        "mqtt-event.schema.json",
        frozenset({1, 2}),
        frozenset(
            {
                "schema_version",
                "message_id",
                "pump",
                "kind",
                "occurred_at",
                "channel",
                "channel_state",
                "previous_identity",
                "detail",
            }
        ),
        frozenset({"message_id", "kind", "occurred_at"}),
    ),
    "alarms": PayloadContract(
        "mqtt-alarm.schema.json",
        frozenset({1}),
        frozenset(
            {
                "schema_version",
                "message_id",
                "pump",
                "phase",
                "alert_instance_id",
                "occurred_at",
                "channel",
                "alarm",
                "detail",
            }
        ),
        frozenset({"message_id", "phase", "occurred_at"}),
    ),
    "alerts": PayloadContract(
        "mqtt-alert.schema.json",
        frozenset({1}),
        frozenset({"schema_version", "message_id", "alert", "gateway", "occurred_at", "details"}),
        frozenset({"message_id", "alert", "occurred_at"}),
    ),
    "library": PayloadContract(
        "mqtt-library.schema.json",
        frozenset({1}),
        frozenset({"schema_version", "version", "sha256", "signer_key_id", "applied_at", "source"}),
        frozenset({"version"}),
    ),
    "release": PayloadContract(
        "mqtt-library-current.schema.json",
        frozenset({1}),
        frozenset({"schema_version", "published_at", "signature"}),  # version etc. in signature.metadata
        frozenset({"signature"}),
    ),
    "release.metadata": PayloadContract(
        "mqtt-library-current.schema.json#ReleaseMetadata",
        frozenset({1}),
        frozenset({"version", "library_sha256", "signed_at"}),
        frozenset({"version"}),
    ),
}

# Version 2 of events and inventory (traceability) is additive: new event kinds; per pump
# asset_tag, udi, first_seen, bed; the gateway's ward. Version 1 of both is still accepted.

AGREED_ADDITIONS: dict[str, frozenset[str]] = {
    "status": frozenset(
        {"ward", "heartbeat_at", "heartbeat_interval_s", "outbox_depth", "outbox_oldest_age_s", "health"}
    ),
    "inventory": frozenset({"ward"}),
    "inventory.pump": frozenset({"asset_tag", "udi", "first_seen", "bed"}),
}
"""Fields agreed in round 2 that the published schemas may not carry yet (read when present)."""

EVENT_KINDS_KNOWN = frozenset(
    {
        "delivery_start",
        "delivery_stop",
        "delivery_complete",
        "program_cleared",
        "comm_lost",
        "comm_restored",
        "device_time_changed",
        "identity_changed",
        # traceability (agreed): swaps, firmware and pump-library changes, returns
        "device_swapped",
        "firmware_changed",
        "pump_library_changed",
        "device_returned",
        "identity_unreadable",
    }
)
"""Event kinds the reports interpret. Other kinds are still stored (a newer gateway's kind is data)."""

IDENTITY_EVENT_KINDS = frozenset(
    {
        "identity_changed",
        "device_swapped",
        "firmware_changed",
        "pump_library_changed",
        "device_returned",
        "identity_unreadable",
    }
)
