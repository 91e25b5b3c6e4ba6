"""Durable per-slot pump identity and swap/firmware/library change detection (issue 17)."""

from gateway.identity.compare import Change, Comparison, compare
from gateway.identity.model import FIELDS, DeviceRecord, SlotRecord
from gateway.identity.registry import IdentityRegistry, Observation, load_slots

__all__ = [
    "Change",
    "Comparison",
    "DeviceRecord",
    "FIELDS",
    "IdentityRegistry",
    "Observation",
    "SlotRecord",
    "compare",
    "load_slots",
]
