"""The drug library in force: a pinned file, signed releases, the pharmacy keys that sign them.

A release is applied only if it verifies with a trusted key (design §7); these tables say
which keys, where releases come from and how large they may be.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AwareDatetime, Field, model_validator

from gateway.config.strict import StrictModel


class TrustedKeyConfig(StrictModel):
    """A pharmacy public key whose signed library releases the gateway accepts (docs/drug-library.md)."""

    file: Path = Field(description="Ed25519 public key, PEM (written by `pumpgw library keygen`).")
    key_id: str = Field(
        default="",
        pattern=r"^([0-9a-f]{16})?$",
        description="Expected key id (16 hex digits); if set, a key file with another id is refused.",
    )
    valid_from: AwareDatetime = Field(description="ISO 8601 time with offset; releases signed earlier are refused.")
    valid_until: AwareDatetime | None = Field(
        default=None, description="ISO 8601 time with offset; releases signed later are refused (rotation)."
    )
    note: str = Field(default="", description="Who holds the private key, where it is stored.")

    @model_validator(mode="after")
    def _window(self) -> TrustedKeyConfig:
        if self.valid_until is not None and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class LibraryConfig(StrictModel):
    """The central drug library that reported programs are checked against."""

    path: Path | None = Field(
        default=None,
        description="Drug library JSON file; with trusted_keys it needs its signature beside it (FILE.sig).",
    )
    sha256: str = Field(
        default="",
        pattern=r"^([0-9a-f]{64})?$",
        description="Pinned SHA-256 of the library file; a file with another hash is refused.",
    )
    trusted_keys: list[TrustedKeyConfig] = Field(
        default_factory=list,
        description="Public keys of the pharmacy; if any, only releases signed by one of them are put in force.",
    )
    allow_downgrade: bool = Field(
        default=False,
        description="Accept a signed release older than the one in force (recall); audited.",
    )
    watch_dir: Path | None = Field(
        default=None,
        description="Folder watched for signed releases (FILE.json + FILE.json.sig), e.g. /etc/pumpgw/library.",
    )
    from_mqtt: bool = Field(
        default=True,
        description="With trusted_keys and [mqtt] enabled: take releases from {prefix}/library/current.",
    )
    max_release_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=4096,
        le=64 * 1024 * 1024,
        description="Largest release accepted (MQTT payload or dropped file); larger ones are refused unread.",
    )

    @model_validator(mode="after")
    def _source(self) -> LibraryConfig:
        if self.path is None and not self.trusted_keys:
            raise ValueError("set path (a pinned library file), trusted_keys (signed releases), or both")
        if (self.watch_dir is not None) and not self.trusted_keys:
            raise ValueError("watch_dir needs trusted_keys: dropped files are put in force only when signed")
        return self
