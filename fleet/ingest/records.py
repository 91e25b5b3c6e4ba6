"""Typed records the collector writes: what the fleet keeps of each MQTT payload.

Only device, program, verdict and alarm data (design.md: no patient data centrally). The
parser builds these from a whitelist of fields, so a field a gateway adds later -- or a
patient identifier a misconfigured gateway publishes -- never reaches PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Identity:
    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware: str | None = None
    library_version: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    site: str
    gateway: str
    state: str  # online | offline
    session: str
    version: str | None
    config_hash: str | None
    since: datetime
    ward: str | None = None
    heartbeat_at: datetime | None = None
    heartbeat_interval_s: float | None = None
    outbox_depth: int | None = None
    outbox_oldest_age_s: float | None = None


@dataclass(frozen=True, slots=True)
class InventoryPump:
    pump: str
    identity: Identity
    last_seen: datetime | None = None
    first_seen: datetime | None = None
    asset_tag: str | None = None
    udi: str | None = None
    bed: str | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    site: str
    gateway: str
    generated_at: datetime
    central_library_version: str | None
    ward: str | None
    pumps: tuple[InventoryPump, ...]


@dataclass(frozen=True, slots=True)
class ChannelVerdict:
    """The drug-library verdict set of one channel's running program (no patient data)."""

    channel: str
    drug: str | None
    care_area: str | None
    severity: str
    kinds: tuple[str, ...]
    library_version: str | None


@dataclass(frozen=True, slots=True)
class State:
    site: str
    gateway: str
    pump: str
    received_at: datetime
    identity: Identity
    channels: tuple[tuple[str, str, str | None], ...]  # (channel, state, drug)
    verdicts: tuple[ChannelVerdict, ...] = ()


@dataclass(frozen=True, slots=True)
class Availability:
    site: str
    gateway: str
    pump: str
    availability: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Event:
    site: str
    gateway: str
    pump: str
    message_id: str
    kind: str
    occurred_at: datetime
    channel: str | None = None
    channel_state: str | None = None
    drug: str | None = None
    care_area: str | None = None
    detail: dict[str, str] = field(default_factory=dict)
    previous_identity: Identity | None = None


@dataclass(frozen=True, slots=True)
class AlarmMsg:
    site: str
    gateway: str
    pump: str
    message_id: str
    phase: str
    occurred_at: datetime
    alert_instance_id: str | None = None
    channel: str | None = None
    code: str | None = None
    alarm_kind: str | None = None
    priority: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class GatewayAlert:
    site: str
    gateway: str
    message_id: str
    alert: str
    occurred_at: datetime
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GatewayLibrary:
    """``{base}/library``: the drug library in force at one gateway (issue 18)."""

    site: str
    gateway: str
    version: str
    sha256: str | None
    signer_key_id: str | None
    applied_at: datetime
    source: str | None


@dataclass(frozen=True, slots=True)
class Release:
    """``{prefix}/library/current``: the pharmacy's current release (issue 18)."""

    version: str
    sha256: str | None
    released_at: datetime | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message the fleet cannot use: recorded with topic and reason (never silently dropped)."""

    topic: str
    reason: str


Record = (
    Status | Inventory | State | Availability | Event | AlarmMsg | GatewayAlert | GatewayLibrary | Release | Rejected
)
