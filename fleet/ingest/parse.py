"""From one MQTT message (topic, bytes) to one typed record: pure, total, tolerant.

Tolerant: unknown fields are ignored, agreed-but-absent fields are ``None``. Strict where it
matters: a schema version the fleet does not know, a missing required field, a naive time or
a malformed JSON document yields a :class:`Rejected` naming the topic and what was wrong.
:func:`parse_message` never raises (a hypothesis test feeds it arbitrary bytes), because one
bad gateway must not stop the region's collector.

Only whitelisted fields are copied, and free-form maps (``detail``) lose every key that looks
like a patient identifier: the fleet stores no patient data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, overload

from fleet.ingest.contract import CONTRACTS, PATIENT_HINTS, PATIENT_KEYS
from fleet.ingest.records import (
    AlarmMsg,
    Availability,
    ChannelVerdict,
    Event,
    GatewayAlert,
    GatewayLibrary,
    Identity,
    Inventory,
    InventoryPump,
    Record,
    Rejected,
    Release,
    State,
    Status,
)
from fleet.ingest.topics import Topic, parse_topic

MAX_TEXT = 200  # longer strings are cut: ids and device texts are short; a long one is not ours


class Invalid(ValueError):
    """One field of a payload is unusable; the message says which and why."""


@overload
def _text(obj: Mapping[str, Any], key: str, *, required: Literal[True]) -> str: ...
@overload
def _text(obj: Mapping[str, Any], key: str, *, required: bool = False) -> str | None: ...
def _text(obj: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise Invalid(f"missing required field {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Invalid(f"field {key!r} must be a string, got {type(value).__name__}")
    return str(value)[:MAX_TEXT]


@overload
def _time(obj: Mapping[str, Any], key: str, *, required: Literal[True]) -> datetime: ...
@overload
def _time(obj: Mapping[str, Any], key: str, *, required: bool = False) -> datetime | None: ...
def _time(obj: Mapping[str, Any], key: str, *, required: bool = False) -> datetime | None:
    raw = _text(obj, key, required=required)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise Invalid(f"field {key!r} is not an ISO 8601 time: {raw[:40]!r}") from None
    if value.tzinfo is None:
        raise Invalid(f"field {key!r} has no UTC offset: {raw[:40]!r}")
    if not 1970 <= value.year <= 9000:
        raise Invalid(f"field {key!r} is out of range: {raw[:40]!r}")
    return value


def _number(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Invalid(f"field {key!r} is not a number: {str(value)[:40]!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise Invalid(f"field {key!r} is not finite")
    return number


def _map(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Invalid(f"field {key!r} must be an object, got {type(value).__name__}")
    return value


def _list(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(f"field {key!r} must be a list, got {type(value).__name__}")
    return value


def is_patient_key(key: str) -> bool:
    k = key.lower()
    return k in PATIENT_KEYS or any(hint in k for hint in PATIENT_HINTS)


def device_detail(obj: Mapping[str, Any], key: str) -> dict[str, str]:
    """A free-form string map without anything that looks like a patient identifier."""
    out: dict[str, str] = {}
    for k, v in _map(obj, key).items():
        if is_patient_key(str(k)) or isinstance(v, Mapping | list):
            continue
        out[str(k)[:MAX_TEXT]] = str(v)[:MAX_TEXT]
    return out


def _identity(obj: Mapping[str, Any]) -> Identity:
    return Identity(
        manufacturer=_text(obj, "manufacturer"),
        model=_text(obj, "model"),
        serial_number=_text(obj, "serial_number"),
        firmware=_text(obj, "firmware"),
        library_version=_text(obj, "drug_library_version"),
    )


def _verdicts(raw: Any) -> tuple[ChannelVerdict, ...]:
    if not isinstance(raw, list):
        return ()
    out = []
    for vs in raw:
        if not isinstance(vs, Mapping) or vs.get("channel") is None:
            continue
        raw_inner = vs.get("verdicts")
        inner = [v for v in raw_inner if isinstance(v, Mapping)] if isinstance(raw_inner, list) else []
        first = inner[0] if inner else {}
        out.append(
            ChannelVerdict(
                channel=str(vs["channel"])[:MAX_TEXT],
                drug=_text(first, "drug"),
                care_area=_text(first, "care_area"),
                severity=_text(vs, "severity") or "unknown",
                kinds=tuple(sorted({str(v.get("kind"))[:MAX_TEXT] for v in inner if v.get("kind")})),
                library_version=_text(vs, "library_version"),
            )
        )
    return tuple(out)


def _check_version(kind: str, doc: Mapping[str, Any]) -> None:
    version = doc.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version not in CONTRACTS[kind].versions:
        raise Invalid(
            f"schema_version {repr(version)[:20]} is not one the fleet understands ({sorted(CONTRACTS[kind].versions)})"
        )


def _build(t: Topic, doc: Mapping[str, Any]) -> Record:
    kind = t.kind
    _check_version(kind, doc)
    if kind == "status":
        health = _map(doc, "health")
        depth = _number(doc, "outbox_depth") if "outbox_depth" in doc else _number(health, "outbox_depth")
        age_key = "outbox_oldest_age_s"
        age = _number(doc, age_key) if age_key in doc else _number(health, age_key)
        state = _text(doc, "state", required=True)
        if state not in ("online", "offline"):
            raise Invalid(f"field 'state' must be online or offline, got {state[:20]!r}")
        return Status(
            t.site,
            t.gateway,
            state,
            _text(doc, "session", required=True) or "",
            _text(doc, "version"),
            _text(doc, "config_hash"),
            # A Last Will is written at connect, so its "since" is null: the time of death is
            # when the will arrives here (docs/fleet.md, "PostgreSQL: data model").
            _time(doc, "since") or datetime.now(UTC),
            ward=_text(doc, "ward"),
            heartbeat_at=_time(doc, "heartbeat_at"),
            heartbeat_interval_s=_number(doc, "heartbeat_interval_s"),
            outbox_depth=int(depth) if depth is not None else None,
            outbox_oldest_age_s=age,
        )
    if kind == "inventory":
        pumps_raw = doc.get("pumps")
        if not isinstance(pumps_raw, list):
            raise Invalid("field 'pumps' must be a list")
        pumps = []
        for entry in pumps_raw:
            if not isinstance(entry, Mapping):
                raise Invalid("an entry of 'pumps' is not an object")
            pumps.append(
                InventoryPump(
                    pump=_text(entry, "pump", required=True) or "",
                    identity=_identity(entry),
                    last_seen=_time(entry, "last_seen"),
                    first_seen=_time(entry, "first_seen"),
                    asset_tag=_text(entry, "asset_tag"),
                    udi=_text(entry, "udi"),
                    bed=_text(entry, "bed"),
                )
            )
        return Inventory(
            t.site,
            t.gateway,
            _time(doc, "generated_at", required=True),
            _text(doc, "central_library_version"),
            _text(doc, "ward"),
            tuple(pumps),
        )
    if kind == "state":
        channels = []
        for ch in _list(doc, "channels"):
            if isinstance(ch, Mapping) and ch.get("channel") is not None:
                channels.append((str(ch["channel"])[:MAX_TEXT], _text(ch, "state") or "unknown", _text(ch, "drug")))
        return State(
            t.site,
            t.gateway,
            t.pump,
            _time(doc, "received_at", required=True),
            _identity(_map(doc, "identity")),
            tuple(channels),
            _verdicts(doc.get("verdicts")),
        )
    if kind == "availability":
        return Availability(
            t.site,
            t.gateway,
            t.pump,
            _text(doc, "availability", required=True),
            _time(doc, "since", required=True),
        )
    if kind == "events":
        cs = _map(doc, "channel_state")
        prev = doc.get("previous_identity")
        return Event(
            t.site,
            t.gateway,
            t.pump,
            _text(doc, "message_id", required=True) or "",
            _text(doc, "kind", required=True) or "",
            _time(doc, "occurred_at", required=True),
            channel=_text(doc, "channel"),
            channel_state=_text(cs, "state"),
            drug=_text(cs, "drug"),
            care_area=_text(cs, "care_area"),
            detail=device_detail(doc, "detail"),
            previous_identity=_identity(prev) if isinstance(prev, Mapping) else None,
        )
    if kind == "alarms":
        alarm = _map(doc, "alarm")
        return AlarmMsg(
            t.site,
            t.gateway,
            t.pump,
            _text(doc, "message_id", required=True) or "",
            _text(doc, "phase", required=True) or "",
            _time(doc, "occurred_at", required=True),
            alert_instance_id=_text(doc, "alert_instance_id"),
            channel=_text(doc, "channel"),
            code=_text(alarm, "code"),
            alarm_kind=_text(alarm, "kind"),
            priority=_text(alarm, "priority"),
            text=_text(alarm, "text"),
        )
    if kind == "alerts":
        return GatewayAlert(
            t.site,
            t.gateway,
            _text(doc, "message_id", required=True) or "",
            _text(doc, "alert", required=True) or "",
            _time(doc, "occurred_at", required=True),
            device_detail(doc, "details"),
        )
    if kind == "library":
        return GatewayLibrary(
            t.site,
            t.gateway,
            _text(doc, "version", required=True) or "",
            _text(doc, "sha256"),
            _text(doc, "signer_key_id"),
            _time(doc, "applied_at", required=True),
            _text(doc, "source"),
        )
    if kind == "release":
        return _release(doc)
    raise Invalid(f"no parser for topic kind {kind!r}")


_RELEASE_TIME_KEYS = ("published_at", "released_at", "signed_at", "issued_at", "created_at")


def _release(doc: Mapping[str, Any]) -> Release:
    """``{"published_at", "signature": {"metadata": {"version", "library_sha256", "signed_at" ...}},
    "library": "<text>"}`` (docs/mqtt.md, drug library distribution). The fleet does not verify
    the signature (the gateways do before applying); it only records which release is current.
    The metadata is found up to two levels deep, so a reshaped envelope still yields its version.
    """
    level: list[Mapping[str, Any]] = [doc]
    for _ in range(3):
        for candidate in level:
            version = _text(candidate, "version")
            if version:
                when = next((_time(d, k) for d in (doc, candidate) for k in _RELEASE_TIME_KEYS if d.get(k)), None)
                sha = _text(candidate, "library_sha256") or _text(candidate, "sha256")
                return Release(version, sha, when)
        level = [v for c in level for v in c.values() if isinstance(v, Mapping)]
    raise Invalid("no 'version' in the release document (expected signature.metadata.version)")


def parse_message(prefix: str, topic: str, payload: bytes) -> Record | None:
    """The record for one message; ``None`` for topics the fleet deliberately ignores (rebirth)."""
    t = parse_topic(prefix, topic)
    if t is None:
        return Rejected(topic[:MAX_TEXT], "topic is not part of the pumpgw tree")
    if t.kind == "ignored":
        return None
    if not payload and t.kind in ("status", "inventory", "state", "availability", "library", "release"):
        return None  # a retained message being cleared
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        return Rejected(topic[:MAX_TEXT], f"payload is not JSON: {str(exc)[:80]}")
    if not isinstance(doc, dict):
        return Rejected(topic[:MAX_TEXT], "payload is not a JSON object")
    try:
        return _build(t, doc)
    except Invalid as exc:
        return Rejected(topic[:MAX_TEXT], f"{t.kind}: {exc}")
    except RecursionError:
        return Rejected(topic[:MAX_TEXT], f"{t.kind}: payload nested too deeply")
