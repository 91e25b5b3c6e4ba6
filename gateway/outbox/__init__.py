"""Durable on-disk outbox (design.md §2 inv. 2-4, 8): nothing produced is lost."""

from gateway.outbox.errors import (
    MessageNotFound,
    OutboxAccessError,
    OutboxBusy,
    OutboxClosed,
    OutboxCorrupt,
    OutboxError,
    OutboxFull,
    OutboxSchemaError,
)
from gateway.outbox.model import (
    THINNABLE_KINDS,
    InboundReceipt,
    LaneStats,
    NewMessage,
    OutboxMessage,
    Outcome,
    PumpStateRow,
)
from gateway.outbox.store import Outbox

__all__ = [
    "InboundReceipt",
    "LaneStats",
    "MessageNotFound",
    "NewMessage",
    "Outbox",
    "Outcome",
    "OutboxClosed",
    "OutboxAccessError",
    "OutboxBusy",
    "OutboxFull",
    "OutboxCorrupt",
    "OutboxError",
    "OutboxMessage",
    "OutboxSchemaError",
    "PumpStateRow",
    "THINNABLE_KINDS",
]
