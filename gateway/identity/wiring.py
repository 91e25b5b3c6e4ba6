"""Assembling traceability for the daemon: audit trail, identity registry, config audit rows.

Kept out of gateway/daemon.py so the composition root gains one call. Configuration changes
are audited at start-up (against the hash recorded at the previous start) and at every
SIGHUP (the file as it is now against the last recorded hash): the row names both hashes,
so "what was in force when" can be answered from the trail alone.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.audit import AuditError, AuditTrail
from gateway.config.model import GatewayConfig
from gateway.identity.model import SlotRecord
from gateway.identity.registry import IdentityRegistry
from gateway.identity.trace import Traceability
from gateway.log import get_logger

log = get_logger("pumpgw.audit")
RETENTION_CHECK_S = 86400.0


def full_config_hash(config: GatewayConfig) -> str:
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()


def slot_fields(record: SlotRecord) -> dict[str, Any]:
    """What the retained MQTT inventory shows from the registry for one slot."""
    return {
        "manufacturer": record.manufacturer,
        "model": record.model,
        "serial_number": record.serial_number,
        "firmware": record.firmware,
        "drug_library_version": record.drug_library_version,
        "udi": record.udi,
        "asset_tag": record.asset_tag,
        "first_seen": record.first_seen,
        "last_seen": record.last_seen,
    }


def last_config_hash(trail: AuditTrail) -> str | None:
    rows = [r for r in trail.rows(kind="config") if r.detail_dict.get("hash")]
    return rows[-1].detail_dict["hash"] if rows else None


def audit_config(trail: AuditTrail, config: GatewayConfig, *, when: str, path: Path | None) -> bool:
    """Append ``config.changed`` when the configuration's hash differs from the last recorded."""
    new = full_config_hash(config)
    old = last_config_hash(trail)
    if new != old:
        trail.append(
            "config.changed",
            "config",
            {
                "previous_hash": old or "",
                "hash": new,
                "when": when,
                "path": str(path) if path else "",
            },
        )
        log.info(
            "configuration change recorded in the audit trail", when=when, previous_hash=(old or "")[:16], hash=new[:16]
        )
    return new != old


class TraceabilityParts:
    """The audit trail, registry and pipeline component of one daemon."""

    def __init__(
        self, config: GatewayConfig, *, config_path: Path | None, on_record: Callable[[SlotRecord], None] | None
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.trail = AuditTrail.open(config.outbox.path)
        self.registry = IdentityRegistry(self.trail, {p.id: p.asset_tag for p in config.pumps})
        self.trace = Traceability(self.registry, on_record=on_record)

    def start_up(self) -> None:
        """Record the start, configuration changes and asset-tag registrations; apply retention."""
        trail = self.trail
        trail.append(
            "gateway.start",
            self.config.gateway.gateway_id,
            {
                "version": __version__,
                "config_hash": full_config_hash(self.config),
                "pumps": len(self.config.pumps),
            },
        )
        audit_config(trail, self.config, when="start-up", path=self.config_path)
        for pump_id, old, new in self.registry.sync_asset_tags():
            log.info("asset tag registered for slot", pump=pump_id, previous=old, asset_tag=new)
        deleted = trail.apply_retention(self.config.audit.retention_days)
        if deleted:
            log.info("audit rows past retention deleted", rows=deleted, retention_days=self.config.audit.retention_days)
        known = self.registry.records([p.id for p in self.config.pumps])
        log.info("identity registry loaded", slots_known=len(known), slots_configured=len(self.config.pumps))

    async def on_sighup(self) -> None:
        from gateway.config import load_config
        from gateway.errors import ConfigError

        if self.config_path is None:
            return
        try:
            fresh = load_config(self.config_path)
        except ConfigError as exc:
            self.trail.append(
                "config.refused",
                "config",
                {"when": "SIGHUP", "path": str(self.config_path), "problems": exc.problems[:20]},
            )
            return
        changed = audit_config(self.trail, fresh, when="SIGHUP", path=self.config_path)
        # Only the drug-library pin takes effect on reload; every other key at the next restart.
        log.info("SIGHUP: configuration file re-read for the audit trail", changed=changed)

    async def maintain(self) -> None:
        """Daily: retention (rows older than the configured period, after a checkpoint)."""
        while True:
            await asyncio.sleep(RETENTION_CHECK_S)
            try:
                self.trail.apply_retention(self.config.audit.retention_days)
            except AuditError as exc:
                log.error("audit retention not applied", error=str(exc))

    def close(self) -> None:
        self.registry.flush(force=True)
        self.trail.close()
