"""What the identity registry knows about each configured slot and each device seen."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from drivers.model import PumpIdentity

# Identity fields compared, in the order they are reported.
FIELDS = ("manufacturer", "model", "serial_number", "firmware", "drug_library_version", "udi")


@dataclass(frozen=True, slots=True)
class SlotRecord:
    """The device last seen in one configured slot (pump id), as kept in ``pump_identity``."""

    pump_id: str
    manufacturer: str | None
    model: str | None
    serial_number: str | None
    firmware: str | None
    drug_library_version: str | None
    udi: str | None
    asset_tag: str | None
    asset_serial: str | None  # the serial the asset tag was registered with (first seen with it)
    first_seen: datetime
    last_seen: datetime
    unreadable_since: datetime | None = None

    @classmethod
    def first(cls, pump_id: str, identity: PumpIdentity, at: datetime, asset_tag: str | None) -> SlotRecord:
        return cls(
            pump_id,
            identity.manufacturer,
            identity.model,
            identity.serial_number,
            identity.firmware,
            identity.drug_library_version,
            identity.udi,
            asset_tag,
            identity.serial_number if asset_tag else None,
            at,
            at,
        )

    def identity(self) -> PumpIdentity:
        return PumpIdentity(
            self.manufacturer or "",
            self.model or "",
            self.serial_number,
            self.firmware,
            self.drug_library_version,
            self.udi,
        )

    def merged(self, identity: PumpIdentity, at: datetime) -> SlotRecord:
        """Same device: reported fields replace known ones, unreported (None) are kept."""
        kept = {name: getattr(identity, name) for name in FIELDS if getattr(identity, name) is not None}
        return replace(self, **kept, last_seen=at)

    def to_dict(self) -> dict[str, str | None]:
        return {
            "pump": self.pump_id,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "serial_number": self.serial_number,
            "firmware": self.firmware,
            "drug_library_version": self.drug_library_version,
            "udi": self.udi,
            "asset_tag": self.asset_tag,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "unreadable_since": self.unreadable_since.isoformat() if self.unreadable_since else None,
        }


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device (manufacturer + serial) this gateway has seen, wherever it was."""

    manufacturer: str
    serial_number: str
    model: str | None
    first_seen: datetime
    last_seen: datetime
    last_pump_id: str
