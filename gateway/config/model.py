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

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

MessageKind = Literal["pcd01", "pcd04", "pcd10", "dmc"]
ALL_MESSAGE_KINDS: tuple[str, ...] = ("pcd01", "pcd04", "pcd10")

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_EUI64 = re.compile(r"^[0-9A-F]{16}$")

# The link each protocol family travels on (docs/reference pump-protocols.md §2.2, §3.2, §6.2).
PROTOCOL_LINK: dict[str, str] = {"ne1000": "serial", "alaris": "serial", "bbraun-bcc": "tcp"}

# pyserial URL handlers a serial link may name (serial_for_url); rfc2217 and socket reach
# serial device servers, the others are for testing and diagnosis.
SERIAL_URL_SCHEMES = frozenset({"rfc2217", "socket", "loop", "spy", "alt", "hwgrep"})

# B. Braun SpaceCom addressing: pillar digit 1-3, slot 1-9 then A-O, i.e. 1-24
# (pump-protocols.md §6.5, ``MEM:GETSLOT#<p><s>``).
BBRAUN_PILLARS = range(1, 4)
BBRAUN_SLOTS = range(1, 25)

# Pass ``context={DEFER_CROSS_CHECKS: True}`` to ``model_validate*`` to skip the checks
# across pumps and destinations; the file loader runs them itself so that it can report
# every one of them with its line, not just the first.
DEFER_CROSS_CHECKS = "pumpgw.defer_cross_checks"


def rule_error(key: str, message: str) -> PydanticCustomError:
    """A rule across fields of one table, reported at ``key`` (the field to look at first)."""
    return PydanticCustomError("config_rule", message, {"key": key})


class _Strict(BaseModel):
    # inf/nan are refused: "never" is not a duration here (a pump whose comm_lost_after_s is
    # inf would never be reported lost).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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


class SerialLink(_Strict):
    """A pump on RS-232: a local device, a pseudo-terminal, or a serial device server."""

    type: Literal["serial"] = Field(description="Selects this kind of link.")
    url: str = Field(
        min_length=1,
        description="Device path (/dev/ttyUSB0, /dev/serial/by-id/...), or a pyserial URL: "
        "rfc2217://host:port for RFC 2217 serial servers, socket://host:port for raw TCP serial servers.",
    )
    baudrate: Literal[300, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = Field(
        default=9600, description="Bits per second; must match the pump's setting (NE-1000: 19200, Alaris: 38400)."
    )
    bytesize: Literal[7, 8] = Field(default=8, description="Data bits per character.")
    parity: Literal["N", "E", "O"] = Field(default="N", description="Parity: N none, E even, O odd.")
    stopbits: Literal[1, 2] = Field(default=1, description="Stop bits.")
    address: int | None = Field(
        default=None, ge=0, le=99, description="Pump network address on a multi-drop line (NE-1000: 0-99)."
    )

    @field_validator("url")
    @classmethod
    def _known_url(cls, value: str) -> str:
        if "://" not in value:
            return value  # a device path
        scheme, rest = value.split("://", 1)
        if scheme.lower() not in SERIAL_URL_SCHEMES:
            raise ValueError(
                f"unsupported URL scheme {scheme!r}; expected a device path, rfc2217://HOST:PORT or socket://HOST:PORT"
            )
        if scheme.lower() in ("rfc2217", "socket"):
            hostport = rest.split("?", 1)[0].split("/", 1)[0]
            host, _, port = hostport.rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"{scheme}:// needs HOST:PORT, e.g. {scheme}://10.1.2.3:4001")
        return value


class TcpLink(_Strict):
    """A pump reached over TCP, e.g. one slot of a B. Braun SpaceCom rack (one connection per rack)."""

    type: Literal["tcp"] = Field(description="Selects this kind of link.")
    host: str = Field(min_length=1, description="Address or name of the rack's communication module.")
    port: int = Field(ge=1, le=65535, description="TCP port of the rack (SpaceCom installations often use 4001).")
    pillar: int | None = Field(default=None, ge=1, le=99, description="Rack pillar (B. Braun SpaceCom: 1-3).")
    slot: int | None = Field(default=None, ge=1, le=99, description="Slot within the pillar (B. Braun SpaceCom: 1-24).")

    @model_validator(mode="after")
    def _pillar_with_slot(self) -> TcpLink:
        if (self.pillar is None) != (self.slot is None):
            given, absent = ("pillar", "slot") if self.slot is None else ("slot", "pillar")
            raise rule_error(given, f"pillar and slot must be given together (rack address); {absent} is missing")
        return self


Link = Annotated[SerialLink | TcpLink, Field(discriminator="type")]


class PumpConfig(_Strict):
    """One pump (or one rack slot) the gateway polls, read-only."""

    id: str = Field(pattern=_ID, description="Stable pump id used in topics, logs and HL7 (e.g. 'bed07-a').")
    protocol: Literal["ne1000", "alaris", "bbraun-bcc"] = Field(description="Protocol family of the pump.")
    link: Link = Field(description="How the pump is reached: a serial link or a TCP (rack) link.")
    location: str = Field(default="", description="Bed/location label, e.g. 'ICU-3 bed 7' (PV1-3).")
    care_area: str = Field(default="", description="Drug-library care area the pump is used in.")
    poll_interval_s: float = Field(default=5.0, ge=0.2, le=3600, description="Seconds between two status polls.")
    request_timeout_s: float = Field(
        default=1.0, gt=0, le=60, description="Seconds to wait for the pump's reply to one request."
    )
    comm_lost_after_s: float = Field(
        default=30.0, gt=0, description="Silence after which the pump is reported communication-lost."
    )
    identify_interval_s: float = Field(
        default=300.0,
        ge=5,
        le=86400,
        description="Seconds between two identity reads (serial number, firmware): a swap or a firmware update "
        "that the status replies do not reveal is found within this time. Identity is always read at connect.",
    )
    asset_tag: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The hospital's inventory number (asset tag) of the pump in this slot, from the region's "
        "register; sent as MDC_ATTR_ID_SOFT, shown by `pumpgw inventory`. A pump with another serial "
        "number in this slot is then reported as a swap that contradicts the register (ERROR).",
    )

    @field_validator("asset_tag")
    @classmethod
    def _printable_tag(cls, value: str | None) -> str | None:
        if value is not None and (value != value.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)):
            raise ValueError("an asset tag is printable text without control characters or surrounding blanks")
        return value

    @model_validator(mode="after")
    def _link_fits_protocol(self) -> PumpConfig:
        wanted = PROTOCOL_LINK[self.protocol]
        if self.link.type != wanted:
            how = (
                "host, port, pillar and slot of its SpaceCom rack"
                if wanted == "tcp"
                else "a device path, or an rfc2217:// or socket:// URL of a serial device server"
            )
            raise rule_error(
                "link", f'protocol "{self.protocol}" needs a {wanted} link ({how}); got type = "{self.link.type}"'
            )
        if self.protocol == "bbraun-bcc" and isinstance(self.link, TcpLink):
            if self.link.pillar is None:
                raise rule_error(
                    "link", "a bbraun-bcc pump is addressed by its rack position: link needs pillar and slot"
                )
            if self.link.pillar not in BBRAUN_PILLARS:
                raise rule_error("link", f"a SpaceCom rack has pillars 1-3; got pillar = {self.link.pillar}")
            if self.link.slot not in BBRAUN_SLOTS:
                raise rule_error("link", f"a SpaceCom pillar has slots 1-24; got slot = {self.link.slot}")
        return self


class TlsConfig(_Strict):
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


class RetryPolicy(_Strict):
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


def _default_ttl() -> dict[str, float]:
    # An alarm older than 5 minutes must not be presented as live (design.md §2 inv. 4);
    # observations and events are documentation and are kept a week.
    return {"pcd01": 7 * 86400.0, "pcd04": 300.0, "pcd10": 7 * 86400.0, "dmc": 30 * 86400.0}


class MllpDestination(_Strict):
    """An HL7 receiver (EHR interface engine, alert manager) reached over MLLP.

    Each destination is one lane of the outbox, keyed by ``name``: changing host or port
    keeps the queued messages.
    """

    name: str = Field(pattern=_ID, description="Name of the destination; keys its outbox lane. Keep it stable.")
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
    def _complete_ttl(cls, value: dict[str, float]) -> dict[str, float]:
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


class MqttConfig(_Strict):
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


class OutboxConfig(_Strict):
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


class TrustedKeyConfig(_Strict):
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


class LibraryConfig(_Strict):
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


class AuditConfig(_Strict):
    """The append-only audit trail in the gateway database (docs/biomedical-engineer.md)."""

    retention_days: int = Field(
        default=3650,
        ge=365,
        description="Audit rows older than this many days are deleted (after a checkpoint row that keeps the "
        "chain verifiable). At least 365; the default, ten years, follows the MDR's record-keeping period.",
    )


class LoggingConfig(_Strict):
    """What the daemon logs (to the journal under systemd)."""

    level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Lowest level logged.")
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: readable on a terminal, JSON lines otherwise (journald)."
    )
    wire_trace: bool = Field(
        default=False,
        description="Log every byte to and from pumps and receivers at debug level. CONTAINS PATIENT DATA.",
    )


class PollingConfig(_Strict):
    """How the gateway treats pump links (serial lines, device-server ports, racks)."""

    reconnect: RetryPolicy = Field(
        default_factory=RetryPolicy,
        description="Backoff between attempts to reopen a link that failed (full jitter, reset after a good poll); "
        "it bounds the reconnect rate towards a device server.",
    )


class Hl7Config(_Strict):
    """What every HL7 message carries, whatever its destination."""

    pcd01_interval_s: float = Field(
        default=60.0, ge=1, le=86400, description="Reporting interval: one PCD-01 per pump per interval."
    )
    processing_id: Literal["P", "D"] = Field(
        default="P", description="MSH-11: P production, D debugging (the demo uses D)."
    )


class SourceTls(_Strict):
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


class SourceDevice(_Strict):
    """A pump reported by a vendor server, mapped to a gateway pump id (bed, care area)."""

    id: str = Field(pattern=_ID, description="Pump id used in topics, logs and HL7 (like [[pumps]] id).")
    device: str = Field(
        min_length=1,
        description="The device's entity identifier as the server sends it: OBX-18.1 of the MDS row "
        "(usually the serial number).",
    )
    location: str = Field(default="", description="Bed/location label (PV1-3 of outgoing messages).")
    care_area: str = Field(default="", description="Drug-library care area when the server reports none.")
    asset_tag: str | None = Field(default=None, description="Hospital inventory number (MDC_ATTR_ID_SOFT).")


class SourceConfig(_Strict):
    """A vendor pump server (or an interface-engine copy of its feed) sending IHE PCD over MLLP.

    Its PCD-01/PCD-10/PCD-04 become the gateway's own snapshots and events: the same
    drug-library check, HL7 out, outbox and MQTT as polled pumps (docs/integration-engineer.md).
    """

    name: str = Field(pattern=_ID, description="Name of the source (logs, dedup records). Keep it stable.")
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


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class HealthConfig(_Strict):
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


class GatewayConfig(_Strict):
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
                seen[d.id], _ = f"sources[{i}]", devices.add(d.device)
