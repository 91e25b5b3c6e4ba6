"""Vendor pump servers that send IHE PCD to the gateway over MLLP (inbound sources).

A source acknowledges only what it committed and is bounded and authenticated (design §7);
its devices map to pump ids that must not collide with polled pumps (checked in
:mod:`gateway.config.model`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from gateway.config.strict import ID_PATTERN, StrictModel, rule_error


class SourceTls(StrictModel):
    """TLS on an inbound source. When enabled there is never a plaintext fallback: a sender that
    does not complete the TLS handshake is disconnected."""

    enabled: bool = Field(default=False, description="Accept TLS connections only.")
    cert_file: Path | None = Field(default=None, description="This listener's certificate (PEM).")
    key_file: Path | None = Field(default=None, description="Private key of the listener's certificate.")
    client_ca_file: Path | None = Field(
        default=None,
        description="CA bundle verifying sender certificates; set: mutual TLS (a certificate is required).",
    )

    @model_validator(mode="after")
    def _complete(self) -> SourceTls:
        if self.enabled and (self.cert_file is None or self.key_file is None):
            raise rule_error("cert_file", "TLS on a source needs cert_file and key_file")
        return self


class SourceDevice(StrictModel):
    """A pump reported by a vendor server, mapped to a gateway pump id (bed, care area)."""

    id: str = Field(pattern=ID_PATTERN, description="Pump id used in topics, logs and HL7 (like [[pumps]] id).")
    device: str = Field(
        min_length=1,
        description="The device's entity identifier as the server sends it: OBX-18.1 of the MDS row "
        "(usually the serial number).",
    )
    location: str = Field(default="", description="Bed/location label (PV1-3 of outgoing messages).")
    care_area: str = Field(default="", description="Drug-library care area when the server reports none.")
    asset_tag: str | None = Field(default=None, description="Hospital inventory number (MDC_ATTR_ID_SOFT).")


class SourceConfig(StrictModel):
    """A vendor pump server (or an interface-engine copy of its feed) sending IHE PCD over MLLP.

    Its PCD-01/PCD-10/PCD-04 become the gateway's own snapshots and events: the same
    drug-library check, HL7 out, outbox and MQTT as polled pumps (docs/integration-engineer.md).
    """

    name: str = Field(pattern=ID_PATTERN, description="Name of the source (logs, dedup records). Keep it stable.")
    bind: str = Field(default="127.0.0.1", min_length=1, description="Address the listener binds to (only this one).")
    port: int = Field(ge=0, le=65535, description="TCP port of the listener (0: any free port, tests).")
    accept: list[Literal["pcd01", "pcd10", "pcd04"]] = Field(
        default=["pcd01", "pcd10", "pcd04"], min_length=1, description="Message kinds accepted (others: AR)."
    )
    processing_ids: list[Literal["P", "D", "T"]] = Field(
        default=["P"], min_length=1, description="MSH-11 values accepted (others: AR)."
    )
    devices: list[SourceDevice] = Field(default_factory=list, description="Devices mapped to pump ids.")
    admit: Literal["listed", "any"] = Field(
        default="listed",
        description="listed: an unlisted device is refused (AE naming OBX-18); any: admitted as pump "
        "'<name>-<device>' with default_care_area.",
    )
    default_care_area: str = Field(default="", description="Care area of devices admitted by rule.")
    conformance: Literal["report", "refuse_errors"] = Field(
        default="report",
        description="report: checker findings are logged, usable messages are used; refuse_errors: a message "
        "with an error-severity finding is answered AE naming its position.",
    )
    allow: list[str] = Field(
        default_factory=list, description="Sender addresses or networks (CIDR) allowed; empty: any address."
    )
    allow_names: list[str] = Field(
        default_factory=list,
        description="With mutual TLS: certificate names (CN or DNS SAN) allowed; empty: any verified.",
    )
    tls: SourceTls = Field(default=SourceTls(), description="TLS / mutual TLS of the listener.")
    max_frame_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20, description="Largest MLLP frame accepted.")
    max_connections: int = Field(default=8, ge=1, le=1000, description="Open connections at most; more are refused.")
    idle_timeout_s: float = Field(default=300.0, gt=0, le=86400, description="A connection silent this long is closed.")
    dedup_retention_s: float = Field(
        default=7 * 86400.0, gt=0, description="How long received control ids are remembered for duplicate detection."
    )
