"""Typed rows and figures of the outbox."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

State = Literal["pending", "in_flight", "delivered", "quarantined", "expired"]
STATES: tuple[State, ...] = ("pending", "in_flight", "delivered", "quarantined", "expired")

# Kinds the byte budget may thin (design.md §2 inv. 8): periodic observations only.
# PCD-10 infusion events and PCD-04 alarms are never dropped.
THINNABLE_KINDS: frozenset[str] = frozenset({"pcd01"})


@dataclass(slots=True)
class OutboxMessage:
    id: int
    lane: str
    kind: str
    control_id: str
    payload: bytes
    priority: str
    created_at: float  # wall clock, seconds since the epoch
    expires_at: float
    attempts: int
    state: State = "pending"
    reason: str = ""
    ack_text: str = ""
    state_at: float = 0.0
    ttl_s: float = 0.0


@dataclass(slots=True)
class LaneStats:
    pending: int = 0
    in_flight: int = 0
    delivered: int = 0
    quarantined: int = 0
    expired: int = 0
    thinned: int = 0  # periodic observations dropped by the byte budget (counted, alerted)
    bytes: int = 0  # payload bytes of every row still in the file for this lane
    oldest_pending_age_s: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one claimed message, for :meth:`Outbox.finish_many` (a sender that keeps
    several messages in flight records a window of outcomes in one transaction)."""

    message: OutboxMessage
    state: Literal["delivered", "quarantined", "expired"]
    reason: str = ""
    ack_text: str = ""


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One rendered message for one lane, not yet committed: exact bytes, MSH-10 fixed.

    Produced without I/O (encoders, MQTT payload rendering); a retry of a failed commit
    reuses the same object, so the bytes and control id never change (design.md §2 inv. 2).
    """

    lane: str
    kind: str
    control_id: str
    payload: bytes
    ttl_s: float
    priority: str = "normal"


@dataclass(frozen=True, slots=True)
class PumpStateRow:
    """A pump's durable clinical state (versioned JSON), committed with its messages."""

    pump_id: str
    version: int
    state: str


@dataclass(frozen=True, slots=True)
class InboundReceipt:
    """An inbound message (gateway/sources) answered for by a commit: the durable dedup record.

    ``sender`` is MSH-3 as received, ``digest`` the SHA-256 of the message content; the same
    sender and control id with the same digest is a resend, with another digest a reused id.
    """

    source: str
    sender: str
    control_id: str
    digest: str
