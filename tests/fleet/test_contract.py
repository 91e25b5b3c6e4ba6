"""The fleet's copy of the MQTT contract matches the published schemas; the fleet never imports
the gateway; the parser is total (hypothesis) and keeps no patient data."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.ingest.contract import AGREED_ADDITIONS, CONTRACTS, PATIENT_KEYS
from fleet.ingest.parse import parse_message
from fleet.ingest.records import Event, Rejected, Release, Status
from fleet.ingest.topics import Topic, parse_topic
from fleet.sim import payloads as P

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "config" / "schema"
PFX = "pumpgw/v1"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _schema(ref: str) -> dict:
    name, _, definition = ref.partition("#")
    doc = json.loads((SCHEMAS / name).read_text())
    return doc["$defs"][definition] if definition else doc


def test_every_field_the_fleet_reads_is_in_the_published_schema_or_an_agreed_addition() -> None:
    for kind, contract in CONTRACTS.items():
        if contract.schema_file is None:
            continue
        schema = _schema(contract.schema_file)
        published = set(schema["properties"])
        unknown = contract.reads - published - AGREED_ADDITIONS.get(kind, frozenset())
        assert not unknown, f"{kind}: the fleet reads {sorted(unknown)}, not in {contract.schema_file}"
        # A field the fleet requires must be required by the gateways' schema too.
        loose = contract.requires - set(schema.get("required", [])) - {"schema_version"}
        assert not loose, f"{kind}: fleet requires {sorted(loose)}, optional in {contract.schema_file}"
        version = schema["properties"].get("schema_version", {}).get("const")
        if version is not None:
            assert version in contract.versions, f"{kind}: schema_version {version} not accepted by the fleet"


def test_the_simulator_publishes_payloads_the_gateways_own_models_accept() -> None:
    # The test (not the fleet) may import the gateway: its pydantic models generate the schemas.
    from gateway.mqtt.library_payloads import LibraryInForcePayload, LibraryReleasePayload
    from gateway.mqtt.models import PAYLOAD_MODELS

    samples = {
        "mqtt-status.schema.json": P.status(PFX, "h", "g", state="online", session="s", since=T0, ward="w"),
        "mqtt-event.schema.json": P.event(PFX, "h", "g", "p", kind="delivery_start", at=T0, seq=1, drug="heparin"),
        "mqtt-alarm.schema.json": P.alarm(PFX, "h", "g", "p", phase="onset", at=T0, seq=1, instance="a"),
        "mqtt-availability.schema.json": P.availability(PFX, "h", "g", "p", value="online", since=T0),
        "mqtt-alert.schema.json": P.alert(PFX, "h", "g", name="x", at=T0, seq=1),
        "mqtt-state.schema.json": P.state(
            PFX,
            "h",
            "g",
            "p",
            at=T0,
            ident=P.identity("a", "b", "c", "d", "L7"),
            running="infusing",
            drug="heparin",
            verdict="above_soft_max",
            library="L7",
        ),
        "mqtt-inventory.schema.json": P.inventory(
            PFX,
            "h",
            "g",
            ward="w",
            at=T0,
            central_library="L7",
            pumps=[{"pump": "p", **P.identity("a", "b", "c", "d", "L7"), "last_seen": T0.isoformat()}],
        ),
    }
    additions = set().union(*AGREED_ADDITIONS.values())
    for name, (_, raw, _) in samples.items():
        doc = {k: v for k, v in json.loads(raw).items() if k not in additions}
        assert PAYLOAD_MODELS[name].model_validate(doc).schema_version == doc["schema_version"], name
    in_force = LibraryInForcePayload.model_validate_json(
        P.gateway_library(PFX, "h", "g", version="L8", applied_at=T0)[1]
    )
    assert in_force.version == "L8"
    # The release's signature is a placeholder: its shape (not its validity) must match.
    assert LibraryReleasePayload.model_validate_json(P.release(PFX, version="L8", released_at=T0)[1])


def test_the_fleet_package_never_imports_the_gateway() -> None:
    offenders = []
    for path in (ROOT / "fleet").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in ("gateway", "drivers", "simulators")
            ]
    assert not offenders


def test_topics_of_the_tree_are_recognised_and_others_are_not() -> None:
    assert parse_topic(PFX, "pumpgw/v1/h/gw/status") == Topic("status", "h", "gw")
    assert parse_topic(PFX, "pumpgw/v1/h/gw/pumps/p1/alarms") == Topic("alarms", "h", "gw", "p1")
    assert parse_topic(PFX, "pumpgw/v1/library/current") == Topic("release")
    assert parse_topic(PFX, "pumpgw/v1/h/gw/rebirth") == Topic("ignored", "h", "gw")
    for bad in ("pumpgw/v1/h/gw/pumps/p1/commands", "other/h/gw/status", "pumpgw/v1/h//status", "pumpgw/v1"):
        assert parse_topic(PFX, bad) is None


def test_a_newer_gateway_field_is_ignored_and_an_unknown_schema_version_is_rejected() -> None:
    topic, raw, _ = P.event(PFX, "h", "gw", "p1", kind="delivery_start", at=T0, seq=1)
    doc = json.loads(raw)
    rec = parse_message(PFX, topic, json.dumps({**doc, "added_in_v1_5": {"x": 1}}).encode())
    assert isinstance(rec, Event) and rec.message_id == doc["message_id"]
    rejected = parse_message(PFX, topic, json.dumps({**doc, "schema_version": 3}).encode())
    assert isinstance(rejected, Rejected) and "schema_version 3" in rejected.reason
    assert isinstance(parse_message(PFX, topic, json.dumps({**doc, "schema_version": 1}).encode()), Event)


def test_a_status_without_the_heartbeat_fields_of_older_gateways_parses_with_them_unknown() -> None:
    topic, raw, _ = P.status(PFX, "h", "gw", state="online", session="s", since=T0, ward="w")
    doc = {k: v for k, v in json.loads(raw).items() if k not in AGREED_ADDITIONS["status"]}
    rec = parse_message(PFX, topic, json.dumps(doc).encode())
    assert isinstance(rec, Status) and rec.ward is None and rec.heartbeat_at is None and rec.outbox_depth is None


def test_a_naive_time_is_rejected_naming_the_field() -> None:
    topic, raw, _ = P.alarm(PFX, "h", "gw", "p1", phase="onset", at=T0, seq=1, instance="a")
    doc = json.loads(raw)
    doc["occurred_at"] = "2026-03-01T12:00:00"
    rec = parse_message(PFX, topic, json.dumps(doc).encode())
    assert isinstance(rec, Rejected) and "occurred_at" in rec.reason and "UTC offset" in rec.reason


def test_a_signed_release_envelope_yields_its_version() -> None:
    topic, raw, _ = P.release(PFX, version="2026.03", released_at=T0)
    rec = parse_message(PFX, topic, raw)
    assert isinstance(rec, Release) and rec.version == "2026.03" and rec.released_at == T0
    assert rec.sha256 == json.loads(raw)["signature"]["metadata"]["library_sha256"]
    bare = {"schema_version": 1, "signature": {"format": "x"}, "library": "{}"}
    rejected = parse_message(PFX, topic, json.dumps(bare).encode())
    assert isinstance(rejected, Rejected) and "signature.metadata.version" in rejected.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)
leaves = st.sampled_from(
    [
        "status",
        "inventory",
        "alerts",
        "library",
        "pumps/p1/state",
        "pumps/p1/events",
        "pumps/p1/alarms",
        "pumps/p1/availability",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    leaf=leaves,
    doc=st.dictionaries(
        st.sampled_from(
            [
                "schema_version",
                "message_id",
                "kind",
                "occurred_at",
                "state",
                "session",
                "since",
                "pumps",
                "phase",
                "received_at",
                "identity",
                "channels",
                "verdicts",
                "detail",
                "alarm",
                "version",
                "applied_at",
                "availability",
                "generated_at",
                "alert",
                "details",
                "patient_id",
            ]
        ),
        json_values,
        max_size=10,
    ),
)
def test_the_parser_never_raises_on_arbitrary_json(leaf: str, doc: dict) -> None:
    parse_message(PFX, f"pumpgw/v1/h/gw/{leaf}", json.dumps(doc).encode())


@settings(max_examples=200, deadline=None)
@given(topic=st.text(max_size=60), payload=st.binary(max_size=200))
def test_the_parser_never_raises_on_arbitrary_bytes(topic: str, payload: bytes) -> None:
    parse_message(PFX, topic, payload)


@settings(max_examples=200, deadline=None)
@given(
    key=st.sampled_from(sorted(PATIENT_KEYS)),
    case=st.sampled_from([str.lower, str.upper, str.title]),
    value=st.text(min_size=1, max_size=20),
)
def test_no_patient_key_survives_parsing_in_any_spelling(key: str, case, value: str) -> None:  # type: ignore[no-untyped-def]
    topic, raw, _ = P.event(PFX, "h", "gw", "p1", kind="delivery_start", at=T0, seq=1)
    doc = json.loads(raw)
    doc["detail"][case(key)] = value
    rec = parse_message(PFX, topic, json.dumps(doc).encode())
    assert isinstance(rec, Event) and all(k.lower() != key for k in rec.detail)
