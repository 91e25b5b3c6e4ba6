"""What the MQTT sender needs from the durable outbox, as a :class:`typing.Protocol`.

The publisher never touches SQLite; the gateway's outbox (``gateway/outbox``) satisfies
this Protocol, directly or through a thin adapter at the composition root. Events and
alarms are enqueued here *before* any attempt to publish them, so they survive broker
outages and gateway restarts (design.md §2 inv. 2); they leave the queue only after the
broker's PUBACK.

Each queued MQTT message's payload is an *envelope*: the topic, a NUL byte, then the JSON
payload. MQTT forbids NUL in topic names (MQTT 3.1.1 §1.5.3, MQTT 5 §1.5.4), so the split is
unambiguous, and the outbox needs no MQTT-specific column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.errors import BadInput


class QueuedMessage(Protocol):
    """One claimed message. ``id`` is the outbox's key, passed back to ``mark_delivered``."""

    @property
    def id(self) -> int: ...

    @property
    def payload(self) -> bytes: ...


class DurableQueue(Protocol):
    """The subset of the outbox API the MQTT sender uses.

    Contract:

    * ``enqueue`` commits the message durably before returning (the outbox's API).
    * ``claim(lane, limit)`` returns up to ``limit`` of the *oldest* messages of ``lane`` that
      are neither delivered, quarantined nor expired, in production order. Calling it again
      before they are marked delivered returns them again (head of line).
    * ``mark_delivered(id)`` removes a message from the deliverable set; the sender calls it
      only after the broker's PUBACK.
    * ``quarantine(id, reason)`` sets aside a message that can never be sent (a corrupt
      envelope), kept with the reason and counted, so it does not block the lane (inv. 3).
    * ``wait(lane)`` returns once a message was enqueued on ``lane`` since the last ``claim``
      that returned nothing (at once if one already was). The sender also re-claims on a
      timer, so a spurious or missed wake-up costs latency, not messages.
    """

    async def enqueue(self, *, lane: str, kind: str, control_id: str, payload: bytes, ttl_s: float) -> object: ...

    async def claim(self, lane: str, limit: int) -> Sequence[QueuedMessage]: ...

    async def mark_delivered(self, message_id: int) -> None: ...

    async def quarantine(self, message_id: int, reason: str) -> None: ...

    async def wait(self, lane: str) -> None: ...


class EnvelopeError(BadInput, ValueError):
    """A queued payload is not a topic-NUL-payload envelope (corrupt row, wrong lane)."""

    def __init__(self, message_id: int | None, problem: str) -> None:
        self.message_id = message_id
        self.problem = problem
        super().__init__(f"queued MQTT message {message_id}: {problem}")


def encode_envelope(topic: str, payload: bytes) -> bytes:
    if not topic or "\x00" in topic or "+" in topic or "#" in topic:
        raise EnvelopeError(None, f"topic {topic!r} is not a valid MQTT topic name")
    return topic.encode("utf-8") + b"\x00" + payload


def decode_envelope(data: bytes, message_id: int | None = None) -> tuple[str, bytes]:
    topic, sep, payload = data.partition(b"\x00")
    if not sep or not topic:
        raise EnvelopeError(message_id, "no topic before a NUL separator")
    try:
        return topic.decode("utf-8"), payload
    except UnicodeDecodeError as exc:
        raise EnvelopeError(message_id, f"topic is not UTF-8 at byte {exc.start}") from exc
