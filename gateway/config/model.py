"""The configuration schema, as pydantic models: the gateway's identity and the whole file.

Key names carry their units (``poll_interval_s``, ``max_bytes``) so a biomedical engineer
never has to guess. Unknown keys are errors (:class:`~gateway.config.strict.StrictModel`).
The tables live beside this module, one job each (links, pumps, destinations, sources,
library, services); they are re-exported here so ``gateway.config.model`` stays the one
import for the schema. The JSON Schema in ``config/schema/gateway.schema.json`` is generated
from these models (``pumpgw schema``) and a test keeps it in sync.
"""

from __future__ import annotations

import re

from pydantic import Field, ValidationInfo, field_validator, model_validator

from gateway.config.destinations import ALL_MESSAGE_KINDS, MessageKind, MllpDestination, RetryPolicy, TlsConfig
from gateway.config.library import LibraryConfig, TrustedKeyConfig
from gateway.config.links import SERIAL_URL_SCHEMES, Link, LinkKey, SerialLink, TcpLink
from gateway.config.pumps import PumpConfig
from gateway.config.services import (
    LOOPBACK_HOSTS,
    AuditConfig,
    HealthConfig,
    Hl7Config,
    LoggingConfig,
    MqttConfig,
    OutboxConfig,
    PollingConfig,
)
from gateway.config.sources import SourceConfig, SourceDevice, SourceTls
from gateway.config.strict import DEFER_CROSS_CHECKS, ID_PATTERN, StrictModel, rule_error

__all__ = [
    "ALL_MESSAGE_KINDS",
    "DEFER_CROSS_CHECKS",
    "LOOPBACK_HOSTS",
    "SERIAL_URL_SCHEMES",
    "AuditConfig",
    "GatewayConfig",
    "GatewayIdentity",
    "HealthConfig",
    "Hl7Config",
    "LibraryConfig",
    "Link",
    "LinkKey",
    "LoggingConfig",
    "MessageKind",
    "MllpDestination",
    "MqttConfig",
    "OutboxConfig",
    "PollingConfig",
    "PumpConfig",
    "RetryPolicy",
    "SerialLink",
    "SourceConfig",
    "SourceDevice",
    "SourceTls",
    "TcpLink",
    "TlsConfig",
    "TrustedKeyConfig",
    "rule_error",
]

_EUI64 = re.compile(r"^[0-9A-F]{16}$")


class GatewayIdentity(StrictModel):
    """Who this gateway is: names used in MQTT topics, HL7 MSH-3/OBR-3 and logs."""

    site: str = Field(pattern=ID_PATTERN, description="Hospital/site identifier, used in MQTT topics.")
    ward: str = Field(pattern=ID_PATTERN, description="Ward identifier, e.g. 'icu-3'.")
    gateway_id: str = Field(pattern=ID_PATTERN, description="This gateway's id, unique within the site.")
    eui64: str = Field(
        description="The gateway's EUI-64 as 16 hex digits (MSH-3, OBR-3); IHE PCD's preferred device id."
    )
    country: str = Field(
        default="", pattern=r"^([A-Z]{3})?$", description="ISO 3166 alpha-3 code for MSH-17; empty to omit."
    )
    incomplete_reason: str = Field(
        default="",
        description="Why this gateway runs without any pump or without any destination (e.g. 'draining the "
        "outbox after decommissioning'). check-config and run refuse such a configuration unless a reason is given.",
    )

    @field_validator("eui64", mode="before")
    @classmethod
    def _normalise_eui64(cls, value: object) -> object:
        if isinstance(value, str):
            compact = value.replace("-", "").replace(":", "").upper()
            if not _EUI64.match(compact):
                raise ValueError("expected an EUI-64: 16 hex digits, optionally grouped with '-' or ':'")
            return compact
        return value


class GatewayConfig(StrictModel):
    """The whole configuration of one gateway host."""

    gateway: GatewayIdentity = Field(description="Identity of this gateway.")
    pumps: list[PumpConfig] = Field(default_factory=list, description="The pumps polled, one [[pumps]] table each.")
    destinations: list[MllpDestination] = Field(
        default_factory=list, description="HL7 receivers, one [[destinations]] table each."
    )
    sources: list[SourceConfig] = Field(
        default_factory=list, description="Vendor pump servers sending IHE PCD over MLLP, one [[sources]] table each."
    )
    hl7: Hl7Config = Field(default=Hl7Config(), description="What every HL7 message carries.")
    polling: PollingConfig = Field(default=PollingConfig(), description="Pump links: reconnect backoff.")
    mqtt: MqttConfig = Field(default=MqttConfig(), description="MQTT publishing of live state.")
    outbox: OutboxConfig = Field(description="The durable outbox.")
    library: LibraryConfig | None = Field(default=None, description="The drug library; none: no verdicts.")
    logging: LoggingConfig = Field(default=LoggingConfig(), description="Logging.")
    health: HealthConfig = Field(default=HealthConfig(), description="Health, metrics and status page over HTTP.")
    audit: AuditConfig = Field(default=AuditConfig(), description="The audit trail: retention.")
    shutdown_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Seconds allowed for a clean stop before tasks are cancelled."
    )

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> GatewayConfig:
        """Unique names, shared serial lines, rack addresses (gateway.config.checks)."""
        self._source_ids_unique()
        if isinstance(info.context, dict) and info.context.get(DEFER_CROSS_CHECKS):
            return self
        from gateway.config.checks import cross_check  # the checks need these models

        errors = cross_check(list(enumerate(self.pumps)), list(enumerate(self.destinations)))
        if errors:
            raise ValueError("; ".join(f"{f.where}: {f.message}" for f in errors))
        return self

    def _source_ids_unique(self) -> None:
        """A source device's pump id keys topics and state like a polled pump's: unique overall."""
        seen = {p.id: "pumps" for p in self.pumps}
        names: set[str] = set()
        for i, src in enumerate(self.sources):
            if src.name in names:
                raise ValueError(f"sources[{i}].name: duplicate source name {src.name!r}")
            names.add(src.name)
            devices: set[str] = set()
            for j, d in enumerate(src.devices):
                where = f"sources[{i}].devices[{j}]"
                if d.id in seen:
                    raise ValueError(f"{where}.id: pump id {d.id!r} is already used by {seen[d.id]}")
                if d.device in devices:
                    raise ValueError(f"{where}.device: device {d.device!r} is listed twice in this source")
                seen[d.id] = f"sources[{i}]"
                devices.add(d.device)
