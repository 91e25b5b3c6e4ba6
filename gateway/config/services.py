"""The gateway's own services: MQTT, outbox, audit, logging, polling, HL7 defaults, health.

Tables with one instance each, whose keys a site tunes rarely; the tables describing the
ward (pumps, links, destinations, sources) live in modules of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from gateway.config.destinations import RetryPolicy, TlsConfig
from gateway.config.strict import StrictModel, rule_error


class MqttConfig(StrictModel):
    """The MQTT broker for live pump state, alarms and availability (ward dashboards)."""

    enabled: bool = Field(default=False, description="Publish over MQTT.")
    host: str = Field(default="127.0.0.1", description="Broker address or name.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    client_id: str = Field(default="", description="Empty: derived from site and gateway id.")
    username: str = Field(default="", description="Broker user name; empty for none.")
    password_file: Path | None = Field(
        default=None,
        description="File holding the password (kept out of config); "
        "'credential:NAME' reads the systemd credential NAME.",
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keep-alive interval in seconds.")
    topic_prefix: str = Field(
        default="pumpgw/v1",
        pattern=r"^[^#+]+$",
        description="Start of every topic: {prefix}/{site}/{gateway_id}/... (the ward is not a topic level).",
    )
    include_patient_ids: bool = Field(default=False, description="Put patient identifiers into payloads.")
    tls: TlsConfig = Field(default=TlsConfig(), description="TLS towards the broker.")
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
    heartbeat_interval_s: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="Retained status (and pump availability) is republished this often with a fresh heartbeat_at.",
    )
    stale_after_intervals: int = Field(
        default=3,
        ge=2,
        le=100,
        description="Retained online status and availability expire (MQTT 5) after this many heartbeat intervals; "
        "dashboards treat a status older than that as stale.",
    )
    session_expiry_s: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="MQTT 5 session expiry: the broker keeps the session and its Last Will this long after the "
        "connection drops (a broker that restores sessions then still sends the will after a restart).",
    )
    max_packet_bytes: int = Field(
        default=16 << 20,
        ge=1024,
        le=256 << 20,
        description="MQTT 5 Maximum Packet Size sent on connect: the broker must not send the gateway anything "
        "larger (hostile or mistaken publishes on subscribed topics). Keep it well above "
        "library.max_release_bytes, so an oversized release still arrives and is refused with an audit row.",
    )
    rebirth_min_interval_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="Rebirth requests closer together than this are coalesced into one republish.",
    )


class OutboxConfig(StrictModel):
    """The durable on-disk queue every HL7 and MQTT message is committed to before it is sent."""

    path: Path = Field(description="SQLite file of the durable outbox (on persistent storage).")
    max_bytes: int = Field(default=1 << 30, ge=1 << 20, description="Byte budget; beyond it observations thin.")
    delivered_retention_s: float = Field(default=86400.0, ge=0, description="Keep delivered rows this long.")
    reserve_bytes: int = Field(
        default=4 << 20,
        ge=0,
        description="Disk space held back in a reserve file beside the outbox and released when the disk is full, "
        "so alarms and events still commit (0 = no reserve).",
    )


class AuditConfig(StrictModel):
    """The append-only audit trail in the gateway database (docs/biomedical-engineer.md)."""

    retention_days: int = Field(
        default=3650,
        ge=365,
        description="Audit rows older than this many days are deleted (after a checkpoint row that keeps the "
        "chain verifiable). At least 365; the default, ten years, follows the MDR's record-keeping period.",
    )


class LoggingConfig(StrictModel):
    """What the daemon logs (to the journal under systemd)."""

    level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Lowest level logged.")
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: readable on a terminal, JSON lines otherwise (journald)."
    )
    wire_trace: bool = Field(
        default=False,
        description="Log every byte to and from pumps and receivers at debug level. CONTAINS PATIENT DATA.",
    )


class PollingConfig(StrictModel):
    """How the gateway treats pump links (serial lines, device-server ports, racks)."""

    reconnect: RetryPolicy = Field(
        default_factory=RetryPolicy,
        description="Backoff between attempts to reopen a link that failed (full jitter, reset after a good poll); "
        "it bounds the reconnect rate towards a device server.",
    )


class Hl7Config(StrictModel):
    """What every HL7 message carries, whatever its destination."""

    pcd01_interval_s: float = Field(
        default=60.0, ge=1, le=86400, description="Reporting interval: one PCD-01 per pump per interval."
    )
    processing_id: Literal["P", "D"] = Field(
        default="P", description="MSH-11: P production, D debugging (the demo uses D)."
    )


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class HealthConfig(StrictModel):
    """The gateway's own HTTP surface: /healthz, /metrics (Prometheus) and a status page.

    It shows no patient data. Bound to loopback by default; bound to any other address it
    must use TLS and basic authentication.
    """

    enabled: bool = Field(default=True, description="Serve /healthz, /metrics and the status page.")
    listen: str = Field(default="127.0.0.1", min_length=1, description="Address to bind; loopback by default.")
    port: int = Field(default=9180, ge=1, le=65535, description="TCP port of the health and status listener.")
    cert_file: Path | None = Field(default=None, description="Server certificate (PEM); required off loopback.")
    key_file: Path | None = Field(default=None, description="Private key of cert_file.")
    username: str = Field(default="", description="Basic-auth user name; required off loopback.")
    password_file: Path | None = Field(default=None, description="File holding the basic-auth password.")

    @model_validator(mode="after")
    def _protected_off_loopback(self) -> HealthConfig:
        if (self.cert_file is None) != (self.key_file is None):
            given, absent = ("cert_file", "key_file") if self.key_file is None else ("key_file", "cert_file")
            raise rule_error(given, f"cert_file and key_file must be given together; {absent} is missing")
        if bool(self.username) != (self.password_file is not None):
            raise rule_error("username", "username and password_file must be given together")
        if self.enabled and self.listen not in LOOPBACK_HOSTS and (self.cert_file is None or not self.username):
            raise rule_error(
                "listen",
                f"listening on {self.listen} (not loopback) needs TLS (cert_file, key_file) "
                "and basic authentication (username, password_file)",
            )
        return self
