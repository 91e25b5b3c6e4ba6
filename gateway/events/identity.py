"""What a pump's identity is from report to report.

An identity field reported as ``None`` was not read this time (a protocol without a firmware
query, a failed identity read) and keeps its known value; only a change between two *known*
values is an identity change. The event tracker decides what a change means (a new serial
number is a different device).
"""

from __future__ import annotations

from dataclasses import replace

from drivers.model import PumpIdentity

IDENTITY_FIELDS = ("manufacturer", "model", "serial_number", "firmware", "drug_library_version")


def identity_changes(known: PumpIdentity, reported: PumpIdentity) -> tuple[str, ...]:
    """Fields that changed between two *known* values; ``None`` means "not reported this time"."""
    return tuple(
        name
        for name in IDENTITY_FIELDS
        if getattr(known, name) is not None
        and getattr(reported, name) is not None
        and getattr(known, name) != getattr(reported, name)
    )


def merge_identity(known: PumpIdentity, reported: PumpIdentity) -> PumpIdentity:
    """The reported identity with unreported fields kept from what was known."""
    kept = {name: getattr(known, name) for name in IDENTITY_FIELDS if getattr(reported, name) is None}
    return replace(reported, **kept) if kept else reported
