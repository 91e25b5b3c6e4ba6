"""JSON payloads as a gateway publishes them (config/schema/mqtt-*.schema.json).

Events and inventory are schema_version 2 (traceability additions), the others 1.

Pure functions returning ``(topic, bytes, retain)``. Agreed round-2 additions (ward, bed,
asset tag, heartbeat, ``{base}/library``) are included, as gateways of this release send them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

Message = tuple[str, bytes, bool]


def _iso(t: datetime) -> str:
    return t.isoformat()


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def base(prefix: str, site: str, gateway: str) -> str:
    return f"{prefix}/{site}/{gateway}"


def message_id(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]


def status(
    prefix: str,
    site: str,
    gateway: str,
    *,
    state: str,
    session: str,
    since: datetime,
    ward: str,
    heartbeat_at: datetime | None = None,
    outbox_depth: int = 0,
) -> Message:
    doc = {
        "schema_version": 1,
        "state": state,
        "site": site,
        "gateway": gateway,
        "version": "0.1.0",
        "config_hash": "sim",
        "session": session,
        "since": _iso(since),
        "ward": ward,
        "heartbeat_interval_s": 60,
        "outbox_depth": outbox_depth,
        "outbox_oldest_age_s": 0.0,
    }
    if heartbeat_at is not None:
        doc["heartbeat_at"] = _iso(heartbeat_at)
    return f"{base(prefix, site, gateway)}/status", _dump(doc), True


def identity(manufacturer: str, model: str, serial: str, firmware: str, library: str) -> dict[str, Any]:
    return {
        "manufacturer": manufacturer,
        "model": model,
        "serial_number": serial,
        "firmware": firmware,
        "drug_library_version": library,
    }


def inventory(
    prefix: str, site: str, gateway: str, *, ward: str, at: datetime, central_library: str, pumps: list[dict[str, Any]]
) -> Message:
    doc = {
        "schema_version": 2,
        "site": site,
        "gateway": gateway,
        "generated_at": _iso(at),
        "central_library_version": central_library,
        "ward": ward,
        "pumps": pumps,
    }
    return f"{base(prefix, site, gateway)}/inventory", _dump(doc), True


def state(
    prefix: str,
    site: str,
    gateway: str,
    pump: str,
    *,
    at: datetime,
    ident: dict[str, Any],
    running: str | None,
    drug: str | None,
    verdict: str | None,
    library: str,
) -> Message:
    channel: dict[str, Any] = {"channel": "1", "state": running or "idle", "alarms": []}
    verdicts = []
    if running == "infusing":
        channel["rate"] = {"value": "12.5", "unit": "mL/h"}
        if drug:
            channel["drug"] = drug
            channel["care_area"] = "ICU"
        if verdict:
            verdicts = [
                {
                    "channel": "1",
                    "severity": "ok" if verdict == "within_limits" else "warning",
                    "library_version": library,
                    "library_sha256": "0" * 64,
                    "verdicts": [
                        {
                            "kind": verdict,
                            "severity": "ok",
                            "text": verdict,
                            "limit_name": None,
                            "value": None,
                            "limit": None,
                            "tolerance": None,
                            "care_area": "ICU",
                            "drug": drug,
                            "entry_id": None,
                            "library_version": library,
                            "library_sha256": "0" * 64,
                        }
                    ],
                }
            ]
    doc = {
        "schema_version": 1,
        "pump": pump,
        "received_at": _iso(at),
        "device_time": None,
        "identity": ident,
        "channels": [channel],
        "verdicts": verdicts,
        "patient": None,
    }
    return f"{base(prefix, site, gateway)}/pumps/{pump}/state", _dump(doc), True


def availability(prefix: str, site: str, gateway: str, pump: str, *, value: str, since: datetime) -> Message:
    doc = {"schema_version": 1, "pump": pump, "availability": value, "since": _iso(since)}
    return f"{base(prefix, site, gateway)}/pumps/{pump}/availability", _dump(doc), True


def event(
    prefix: str,
    site: str,
    gateway: str,
    pump: str,
    *,
    kind: str,
    at: datetime,
    seq: int,
    drug: str | None = None,
    previous: dict[str, Any] | None = None,
    detail: dict[str, str] | None = None,
) -> Message:
    channel_state: dict[str, Any] | None = None
    if kind.startswith("delivery"):
        channel_state = {
            "channel": "1",
            "state": "infusing" if kind == "delivery_start" else "stopped",
            "drug": drug,
            "care_area": "ICU" if drug else None,
            "alarms": [],
        }
    doc = {
        "schema_version": 2,
        "message_id": message_id(gateway, pump, seq, kind),
        "pump": pump,
        "kind": kind,
        "occurred_at": _iso(at),
        "channel": "1",
        "channel_state": channel_state,
        "previous_identity": previous,
        "detail": {"seq": str(seq), **(detail or {})},
    }
    return f"{base(prefix, site, gateway)}/pumps/{pump}/events", _dump(doc), False


def alarm(
    prefix: str,
    site: str,
    gateway: str,
    pump: str,
    *,
    phase: str,
    at: datetime,
    seq: int,
    instance: str,
    condition: str = "occlusion",
    priority: str = "high",
) -> Message:
    doc = {
        "schema_version": 1,
        "message_id": message_id(gateway, pump, seq, phase),
        "pump": pump,
        "phase": phase,
        "alert_instance_id": instance,
        "occurred_at": _iso(at),
        "channel": "1",
        "alarm": {
            "code": condition.upper()[:4],
            "kind": condition,
            "text": condition.replace("_", " "),
            "priority": priority,
        },
        "detail": {"seq": str(seq)},
    }
    return f"{base(prefix, site, gateway)}/pumps/{pump}/alarms", _dump(doc), False


def gateway_library(prefix: str, site: str, gateway: str, *, version: str, applied_at: datetime) -> Message:
    doc = {
        "schema_version": 1,
        "site": site,
        "gateway": gateway,
        "version": version,
        "serial": _serial(version),
        "sha256": hashlib.sha256(version.encode()).hexdigest(),
        "signer_key_id": "0123456789abcdef",
        "applied_at": _iso(applied_at),
        "source": "mqtt",
    }
    return f"{base(prefix, site, gateway)}/library", _dump(doc), True


def _serial(version: str) -> int:
    digits = "".join(ch for ch in version if ch.isdigit())
    return int(digits) if digits else 0


def release(prefix: str, *, version: str, released_at: datetime) -> Message:
    """The release envelope of docs/mqtt.md; the signature is a placeholder (the fleet does not
    verify it, and the simulated gateways do not apply it)."""
    metadata = {
        "version": version,
        "serial": _serial(version),
        "released": released_at.date().isoformat(),
        "signed_at": _iso(released_at),
        "signer_key_id": "0123456789abcdef",
        "library_sha256": hashlib.sha256(version.encode()).hexdigest(),
    }
    doc = {
        "schema_version": 1,
        "published_at": _iso(released_at),
        "signature": {"format": "pumpgw-library-signature/1", "metadata": metadata, "signature": "c2ltdWxhdGVk"},
        "library": json.dumps({"version": version}),
    }
    return f"{prefix}/library/current", _dump(doc), True


def alert(prefix: str, site: str, gateway: str, *, name: str, at: datetime, seq: int) -> Message:
    doc = {
        "schema_version": 1,
        "message_id": message_id(gateway, "alert", seq),
        "alert": name,
        "gateway": gateway,
        "occurred_at": _iso(at),
        "details": {"count": "1"},
    }
    return f"{base(prefix, site, gateway)}/alerts", _dump(doc), False
