"""Comparing a reported identity with what is known about the slot. Pure, no I/O.

Rules (docs/biomedical-engineer.md explains them for the people who act on them):

* A field reported as ``None`` by a *snapshot* was simply not read this time. An *identify*
  reply is complete: a field known before and missing now means the identity could not be
  read (``identity_unreadable``), reported once until it is readable again.
* Another serial number in the slot is another device: ``device_swapped``. Where the protocol
  carries no serial (NE-1000), a change of manufacturer or model is the swap. The swap
  *contradicts the asset tag* when the slot has an asset tag that was registered with the
  previous serial: the hospital's register now names the wrong device.
* A serial this gateway has seen before, in any slot, appearing where another device was:
  additionally ``device_returned`` (back from repair, loan, another bed).
* Same device, other firmware: ``firmware_changed``; other pump drug-library version:
  ``pump_library_changed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from drivers.model import PumpIdentity
from gateway.events.model import EventKind
from gateway.identity.model import DeviceRecord, SlotRecord


@dataclass(frozen=True, slots=True)
class Change:
    """One traceability finding: an event kind with its detail and log severity."""

    kind: EventKind
    detail: dict[str, str]
    severity: str  # "error" | "warning" | "info"


@dataclass(frozen=True, slots=True)
class Comparison:
    changes: list[Change] = field(default_factory=list)
    record: SlotRecord | None = None  # the slot record after this observation
    new_device: bool = False  # first sighting of a device in this slot (registered)


def _s(value: object) -> str:
    return "" if value is None else str(value)


def compare(
    pump_id: str,
    known: SlotRecord | None,
    reported: PumpIdentity,
    at: datetime,
    *,
    asset_tag: str | None,
    complete: bool,
    seen_before: DeviceRecord | None,
) -> Comparison:
    if known is None:
        return Comparison([], SlotRecord.first(pump_id, reported, at, asset_tag), new_device=True)
    changes: list[Change] = []
    missing = [
        name
        for name in ("serial_number", "firmware")
        if complete and getattr(known, name) is not None and getattr(reported, name) is None
    ]
    serial_changed = (
        known.serial_number is not None
        and reported.serial_number is not None
        and known.serial_number != reported.serial_number
    )
    model_changed = (
        reported.serial_number is None
        and known.serial_number is None
        and ((known.model or "") != reported.model or (known.manufacturer or "") != reported.manufacturer)
    )
    if serial_changed or model_changed:
        contradicts = bool(known.asset_tag and known.asset_serial and known.asset_serial != reported.serial_number)
        detail = {
            "previous_serial": _s(known.serial_number),
            "serial": _s(reported.serial_number),
            "previous_model": _s(known.model),
            "model": reported.model,
            "previous_manufacturer": _s(known.manufacturer),
            "manufacturer": reported.manufacturer,
            "previous_firmware": _s(known.firmware),
            "firmware": _s(reported.firmware),
            "asset_tag": _s(known.asset_tag),
            "asset_tag_serial": _s(known.asset_serial),
            "contradicts_asset_tag": "true" if contradicts else "false",
            "previous_first_seen": known.first_seen.isoformat(),
            "previous_last_seen": known.last_seen.isoformat(),
        }
        changes.append(Change(EventKind.DEVICE_SWAPPED, detail, "error" if contradicts else "warning"))
        if seen_before is not None:
            changes.append(
                Change(
                    EventKind.DEVICE_RETURNED,
                    {
                        "serial": seen_before.serial_number,
                        "model": _s(seen_before.model),
                        "last_seen": seen_before.last_seen.isoformat(),
                        "last_slot": seen_before.last_pump_id,
                        "first_seen": seen_before.first_seen.isoformat(),
                    },
                    "info",
                )
            )
        record = SlotRecord.first(pump_id, reported, at, known.asset_tag)
        if known.asset_tag and known.asset_serial:  # the tag stays bound to the device it was registered with
            record = replace(record, asset_serial=known.asset_serial)
        return Comparison(changes, record, new_device=True)
    if missing:
        record = known if known.unreadable_since else replace(known, unreadable_since=at)
        if known.unreadable_since is None:
            changes.append(
                Change(
                    EventKind.IDENTITY_UNREADABLE,
                    {
                        "missing": ",".join(missing),
                        "serial": _s(known.serial_number),
                        "firmware": _s(known.firmware),
                        "reason": "identify reply without " + " and ".join(missing),
                    },
                    "warning",
                )
            )
        return Comparison(changes, replace(record, last_seen=at))
    for name, kind, severity in (
        ("firmware", EventKind.FIRMWARE_CHANGED, "warning"),
        ("drug_library_version", EventKind.PUMP_LIBRARY_CHANGED, "info"),
    ):
        before, now = getattr(known, name), getattr(reported, name)
        if before is not None and now is not None and before != now:
            changes.append(
                Change(
                    kind,
                    {
                        "previous": before,
                        "current": now,
                        "serial": _s(reported.serial_number),
                        "model": reported.model,
                        "asset_tag": _s(known.asset_tag),
                    },
                    severity,
                )
            )
    record = known.merged(reported, at)
    if complete and record.unreadable_since is not None:
        record = replace(record, unreadable_since=None)
    if record.asset_tag and record.asset_serial is None and record.serial_number:
        record = replace(record, asset_serial=record.serial_number)
    return Comparison(changes, record)
