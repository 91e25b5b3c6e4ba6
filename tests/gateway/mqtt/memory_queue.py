"""A TEST DOUBLE of the durable outbox: in memory, SQLite-free, NOT durable.

It implements :class:`gateway.mqtt.queue.DurableQueue` exactly as that Protocol documents
it, so the MQTT sender can be tested before the real outbox (``gateway/outbox``) is
plugged in at the composition root. It must never be used in product code: a gateway
restart loses everything in it. The lead runs the sender against the real outbox at
integration.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    lane: str
    kind: str
    control_id: str
    payload: bytes
    ttl_s: float


@dataclass
class MemoryQueue:
    messages: dict[int, Message] = field(default_factory=dict)
    delivered: list[int] = field(default_factory=list)
    quarantined: dict[int, str] = field(default_factory=dict)
    _next_id: int = 1
    _wakeups: dict[str, asyncio.Event] = field(default_factory=dict)

    def _event(self, lane: str) -> asyncio.Event:
        return self._wakeups.setdefault(lane, asyncio.Event())

    async def enqueue(self, *, lane: str, kind: str, control_id: str, payload: bytes, ttl_s: float) -> int:
        msg = Message(self._next_id, lane, kind, control_id, payload, ttl_s)
        self._next_id += 1
        self.messages[msg.id] = msg
        self._event(lane).set()
        return msg.id

    async def claim(self, lane: str, limit: int) -> list[Message]:
        out = [m for m in self.messages.values() if m.lane == lane][:limit]
        if not out:
            self._event(lane).clear()
        return out

    async def mark_delivered(self, message_id: int) -> None:
        del self.messages[message_id]
        self.delivered.append(message_id)

    async def quarantine(self, message_id: int, reason: str) -> None:
        del self.messages[message_id]
        self.quarantined[message_id] = reason

    async def wait(self, lane: str) -> None:
        await self._event(lane).wait()

    def pending(self, lane: str | None = None) -> int:
        return sum(1 for m in self.messages.values() if lane is None or m.lane == lane)
