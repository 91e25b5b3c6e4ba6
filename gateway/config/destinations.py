"""HL7 receivers reached over MLLP, and the TLS and retry settings of outgoing connections.

Each destination is one outbox lane keyed by its name (design §5); TLS and retry settings
are shared with the MQTT broker connection (:mod:`gateway.config.services`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.strict import ID_PATTERN, StrictModel, rule_error

MessageKind = Literal["pcd01", "pcd04", "pcd10", "dmc"]
ALL_MESSAGE_KINDS: tuple[str, ...] = ("pcd01", "pcd04", "pcd10")


class TlsConfig(StrictModel):
    """TLS for an outgoing connection. When enabled there is never a fallback to plaintext."""

    enabled: bool = Field(default=False, description="Use TLS for this connection.")
    ca_file: Path | None = Field(default=None, description="CA bundle to verify the server; system CAs if empty.")
    cert_file: Path | None = Field(default=None, description="Client certificate (PEM) for mutual TLS.")
    key_file: Path | None = Field(
        default=None, description="Private key of the client certificate; 'credential:NAME' reads a systemd credential."
    )
    key_passphrase_file: Path | None = Field(
        default=None,
        description="File holding the passphrase of an encrypted key_file; "
        "'credential:NAME' reads a systemd credential.",
    )
    server_hostname: str | None = Field(default=None, description="Name to verify instead of the host.")
    crl_file: Path | None = Field(
        default=None,
        description="PEM certificate revocation list(s) of the CA; the peer's certificate is checked against it "
        "(a CRL past its next update fails every connection). The site keeps it current (docs/security.md).",
    )

    @model_validator(mode="after")
    def _key_with_cert(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            given, absent = ("cert_file", "key_file") if self.key_file is None else ("key_file", "cert_file")
            raise rule_error(given, f"cert_file and key_file must be given together; {absent} is missing")
        return self


class RetryPolicy(StrictModel):
    """Backoff between reconnects and resends: starts at the initial value, doubles up to the maximum."""

    initial_backoff_s: float = Field(default=1.0, gt=0, le=3600, description="First wait after a failure.")
    max_backoff_s: float = Field(default=60.0, gt=0, le=86400, description="Longest wait between attempts.")

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.max_backoff_s < self.initial_backoff_s:
            raise rule_error(
                "max_backoff_s",
                f"max_backoff_s must be >= initial_backoff_s ({self.initial_backoff_s:g}); got {self.max_backoff_s:g}",
            )
        return self


def _default_ttl() -> dict[MessageKind, float]:
    # An alarm older than 5 minutes must not be presented as live (design.md §2 inv. 4);
    # observations and events are documentation and are kept a week.
    return {"pcd01": 7 * 86400.0, "pcd04": 300.0, "pcd10": 7 * 86400.0, "dmc": 30 * 86400.0}


class MllpDestination(StrictModel):
    """An HL7 receiver (EHR interface engine, alert manager) reached over MLLP.

    Each destination is one lane of the outbox, keyed by ``name``: changing host or port
    keeps the queued messages.
    """

    name: str = Field(pattern=ID_PATTERN, description="Name of the destination; keys its outbox lane. Keep it stable.")
    host: str = Field(min_length=1, description="Address or name of the HL7 receiver.")
    port: int = Field(ge=1, le=65535, description="TCP port of the MLLP listener.")
    messages: list[MessageKind] = Field(min_length=1, description="Message kinds routed here.")
    receiving_application: str = Field(default="", description="MSH-5.")
    receiving_facility: str = Field(default="", description="MSH-6.")
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Seconds to establish the TCP connection.")
    ack_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds to wait for the HL7 ACK before resending the same message."
    )
    tls: TlsConfig = Field(default=TlsConfig(), description="TLS towards the receiver.")
    retry: RetryPolicy = Field(default=RetryPolicy(), description="Reconnect and resend backoff.")
    ttl_s: dict[MessageKind, float] = Field(
        default_factory=_default_ttl,
        description="Per message kind: age in seconds after which a queued message expires (kept on disk as "
        "expired, never sent as live). Kinds not given keep their default: pcd01 and pcd10 604800 (7 days), "
        "pcd04 300 (5 minutes), dmc 2592000 (30 days).",
    )

    @field_validator("messages")
    @classmethod
    def _unique_kinds(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("message kinds must not repeat")
        return value

    @field_validator("ttl_s")
    @classmethod
    def _complete_ttl(cls, value: dict[MessageKind, float]) -> dict[MessageKind, float]:
        for kind, ttl in value.items():
            if ttl <= 0:
                raise rule_error(kind, f"must be > 0 seconds (there is no 'never expires' value); got {ttl:g}")
        return {**_default_ttl(), **value}

    @field_validator("name")
    @classmethod
    def _lane_name_free(cls, value: str) -> str:
        # Lanes derived from other names must never collide: "<name>.alarms" is this
        # destination's alarm lane and "mqtt-*" are MQTT's lanes (docs/integration-engineer.md).
        if value.endswith(".alarms") or value.startswith("mqtt-"):
            raise ValueError(
                f"destination name {value!r} is reserved: names ending in '.alarms' or starting with 'mqtt-' "
                "are outbox lanes of their own"
            )
        return value
