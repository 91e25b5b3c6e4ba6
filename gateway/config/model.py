"""The configuration schema, as pydantic models.

Key names carry their units (``poll_interval_s``, ``max_bytes``) so a biomedical engineer
never has to guess. Unknown keys are errors (``extra="forbid"``): a misspelt key silently
ignored is how a pump ends up unmonitored. The JSON Schema in
``config/schema/gateway.schema.json`` is generated from these models (``pumpgw schema``) and a
test keeps it in sync.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MessageKind = Literal["pcd01", "pcd04", "pcd10"]
ALL_MESSAGE_KINDS: tuple[str, ...] = ("pcd01", "pcd04", "pcd10")

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_EUI64 = re.compile(r"^[0-9A-F]{16}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayIdentity(_Strict):
    """Who this gateway is: names used in MQTT topics, HL7 MSH-3/OBR-3 and logs."""

    site: str = Field(pattern=_ID, description="Hospital/site identifier, used in MQTT topics.")
    ward: str = Field(pattern=_ID, description="Ward identifier, e.g. 'icu-3'.")
    gateway_id: str = Field(pattern=_ID, description="This gateway's id, unique within the site.")
    eui64: str = Field(
        description="The gateway's EUI-64 as 16 hex digits (MSH-3, OBR-3); IHE PCD's preferred device id."
    )
    country: str = Field(
        default="", pattern=r"^([A-Z]{3})?$", description="ISO 3166 alpha-3 code for MSH-17; empty to omit."
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


class SerialLink(_Strict):
    """A pump on RS-232: a local device, a pseudo-terminal, or a serial device server."""

    type: Literal["serial"]
    url: str = Field(
        min_length=1,
        description="Device path (/dev/ttyUSB0, /dev/serial/by-id/...), or a pyserial URL: "
        "rfc2217://host:port for RFC 2217 serial servers, socket://host:port for raw TCP serial servers.",
    )
    baudrate: Literal[300, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    address: int | None = Field(
        default=None, ge=0, le=99, description="Pump network address on a multi-drop line (NE-1000: 0-99)."
    )


class TcpLink(_Strict):
    """A pump reached over TCP, e.g. one slot of a B. Braun SpaceCom rack (one connection per rack)."""

    type: Literal["tcp"]
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    pillar: int | None = Field(default=None, ge=1, le=99, description="Rack pillar (B. Braun BCC addressing).")
    slot: int | None = Field(default=None, ge=1, le=99, description="Slot within the pillar.")

    @model_validator(mode="after")
    def _pillar_with_slot(self) -> TcpLink:
        if (self.pillar is None) != (self.slot is None):
            raise ValueError("pillar and slot must be given together (rack address)")
        return self


Link = Annotated[SerialLink | TcpLink, Field(discriminator="type")]


class PumpConfig(_Strict):
    """One pump (or one rack slot) the gateway polls, read-only."""

    id: str = Field(pattern=_ID, description="Stable pump id used in topics, logs and HL7 (e.g. 'bed07-a').")
    protocol: Literal["ne1000", "alaris", "bbraun-bcc"] = Field(description="Protocol family of the pump.")
    link: Link
    location: str = Field(default="", description="Bed/location label, e.g. 'ICU-3 bed 7' (PV1-3).")
    care_area: str = Field(default="", description="Drug-library care area the pump is used in.")
    poll_interval_s: float = Field(default=5.0, ge=0.2, le=3600)
    request_timeout_s: float = Field(default=1.0, gt=0, le=60)
    comm_lost_after_s: float = Field(
        default=30.0, gt=0, description="Silence after which the pump is reported communication-lost."
    )


class TlsConfig(_Strict):
    """TLS for an outgoing connection. When enabled there is never a fallback to plaintext."""

    enabled: bool = False
    ca_file: Path | None = Field(default=None, description="CA bundle to verify the server; system CAs if empty.")
    cert_file: Path | None = Field(default=None, description="Client certificate (PEM) for mutual TLS.")
    key_file: Path | None = Field(default=None, description="Private key of the client certificate.")
    server_hostname: str | None = Field(default=None, description="Name to verify instead of the host.")

    @model_validator(mode="after")
    def _key_with_cert(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class RetryPolicy(_Strict):
    initial_backoff_s: float = Field(default=1.0, gt=0, le=3600)
    max_backoff_s: float = Field(default=60.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("max_backoff_s must be >= initial_backoff_s")
        return self


def _default_ttl() -> dict[str, float]:
    # An alarm older than 5 minutes must not be presented as live (design.md §2 inv. 4);
    # observations and events are documentation and are kept a week.
    return {"pcd01": 7 * 86400.0, "pcd04": 300.0, "pcd10": 7 * 86400.0}


class MllpDestination(_Strict):
    """An HL7 receiver (EHR interface engine, alert manager) reached over MLLP.

    Each destination is one lane of the outbox, keyed by ``name``: changing host or port
    keeps the queued messages.
    """

    name: str = Field(pattern=_ID)
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    messages: list[MessageKind] = Field(min_length=1, description="Message kinds routed here.")
    receiving_application: str = Field(default="", description="MSH-5.")
    receiving_facility: str = Field(default="", description="MSH-6.")
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    ack_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    tls: TlsConfig = TlsConfig()
    retry: RetryPolicy = RetryPolicy()
    ttl_s: dict[MessageKind, float] = Field(
        default_factory=_default_ttl, description="Per message kind: age after which a queued message expires."
    )

    @field_validator("messages")
    @classmethod
    def _unique_kinds(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("message kinds must not repeat")
        return value

    @field_validator("ttl_s")
    @classmethod
    def _complete_ttl(cls, value: dict[str, float]) -> dict[str, float]:
        for kind, ttl in value.items():
            if ttl <= 0:
                raise ValueError(f"ttl_s.{kind} must be > 0 seconds (there is no 'never expires' value)")
        return {**_default_ttl(), **value}


class MqttConfig(_Strict):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = Field(default="", description="Empty: derived from site and gateway id.")
    username: str = ""
    password_file: Path | None = Field(default=None, description="File holding the password (kept out of config).")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    topic_prefix: str = Field(default="pumpgw/v1", pattern=r"^[^#+]+$")
    include_patient_ids: bool = Field(default=False, description="Put patient identifiers into payloads.")
    tls: TlsConfig = TlsConfig()
    protocol: Literal["3.1.1", "5"] = Field(
        default="5", description="MQTT protocol version; 5 reports ACL refusals of a publish, 3.1.1 cannot."
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300, description="TCP+TLS connect and CONNACK limit.")
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy,
        description="Reconnect backoff (full jitter, capped); refused credentials wait max_backoff_s.",
    )
    max_inflight: int = Field(default=20, ge=1, le=1000, description="QoS 1 publishes awaiting PUBACK per lane.")
    event_ttl_s: float = Field(default=7 * 86400.0, gt=0, description="Queued MQTT events expire after this.")
    alarm_ttl_s: float = Field(
        default=300.0, gt=0, description="Queued MQTT alarms expire after this (MQTT 5 message expiry too)."
    )


class OutboxConfig(_Strict):
    path: Path = Field(description="SQLite file of the durable outbox (on persistent storage).")
    max_bytes: int = Field(default=1 << 30, ge=1 << 20, description="Byte budget; beyond it observations thin.")
    delivered_retention_s: float = Field(default=86400.0, ge=0, description="Keep delivered rows this long.")


class LibraryConfig(_Strict):
    path: Path = Field(description="Drug library JSON file.")
    sha256: str = Field(
        default="",
        pattern=r"^([0-9a-f]{64})?$",
        description="Pinned SHA-256 of the library file; a file with another hash is refused.",
    )


class LoggingConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: readable on a terminal, JSON lines otherwise (journald)."
    )
    wire_trace: bool = Field(
        default=False,
        description="Log every byte to and from pumps and receivers at debug level. CONTAINS PATIENT DATA.",
    )


class GatewayConfig(_Strict):
    """The whole configuration of one gateway host."""

    gateway: GatewayIdentity
    pumps: list[PumpConfig] = Field(default_factory=list)
    destinations: list[MllpDestination] = Field(default_factory=list)
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig
    library: LibraryConfig | None = None
    logging: LoggingConfig = LoggingConfig()
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _unique_names(self) -> GatewayConfig:
        for label, names in (
            ("pump id", [p.id for p in self.pumps]),
            ("destination name", [d.name for d in self.destinations]),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"duplicate {label} {name!r}")
                seen.add(name)
        return self
