"""Payload bytes of the gateway's own topics: status, inventory and technical alerts.

Built like the pump payloads (:mod:`gateway.mqtt.payloads`): a model of
:mod:`gateway.mqtt.models` filled from the gateway's facts, returned as JSON bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from drivers.model import PumpIdentity
from gateway.mqtt.models import (
    GatewayAlertPayload,
    GatewayState,
    InventoryEntry,
    InventoryPayload,
    StatusCause,
    StatusPayload,
)
from gateway.mqtt.payloads import build_payload, identity_model

_IDENTITY_KEYS = ("manufacturer", "model", "serial_number", "firmware", "drug_library_version", "udi")


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
        fields = (
            {**identity_model(ident).model_dump(), "udi": ident.udi}
            if ident
            else {k: extra.pop(k, None) for k in _IDENTITY_KEYS}
        )
        for key in _IDENTITY_KEYS:
            extra.pop(key, None)
        seen = last_seen.get(pump_id) or extra.pop("last_seen", None)
        extra.pop("last_seen", None)
        return InventoryEntry(pump=pump_id, last_seen=seen, **fields, **extra)

    return build_payload(
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
    state: GatewayState,
    site: str,
    gateway: str,
    version: str,
    config_hash: str,
    session: str,
    since: datetime | None,
    ward: str | None = None,
    heartbeat_interval_s: float | None = None,
    heartbeat_at: datetime | None = None,
    cause: StatusCause | None = None,
) -> bytes:
    return build_payload(
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
    return build_payload(
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
