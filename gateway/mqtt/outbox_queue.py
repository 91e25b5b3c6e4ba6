"""The SQLite outbox seen through the MQTT sender's :class:`~gateway.mqtt.queue.DurableQueue`.

The MLLP sender works one message at a time (``Outbox.claim`` / ``Outbox.finish``); the MQTT
sender keeps a window of QoS 1 publishes in flight and wants to see the head of its lane again
after a reconnect. This adapter holds the claimed-but-unacknowledged messages of each lane in
production order and hands them out again until the broker's PUBACK marks them delivered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from gateway.outbox import Outbox
from gateway.outbox.model import OutboxMessage


class OutboxQueue:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._held: dict[str, list[OutboxMessage]] = {}

    async def enqueue(self, *, lane: str, kind: str, control_id: str, payload: bytes, ttl_s: float) -> int:
        return await self.outbox.enqueue(lane=lane, kind=kind, control_id=control_id, payload=payload, ttl_s=ttl_s)

    async def claim(self, lane: str, limit: int) -> Sequence[OutboxMessage]:
        held = self._held.setdefault(lane, [])
        # A message held across a broker outage may have outlived its TTL meanwhile: an alarm
        # must not be published late as if live (design.md §2 inv. 4). It is kept as expired.
        now = time.time()
        for message in [m for m in held if m.expires_at <= now]:
            held.remove(message)
            await self.outbox.finish(
                message,
                "expired",
                reason=f"TTL of {message.ttl_s:g} s passed before the broker acknowledged it",
                claim_next=False,
            )
        while len(held) < limit:
            message = await self.outbox.claim(lane)
            if message is None:
                break
            held.append(message)
        return held[:limit]

    async def mark_delivered(self, message_id: int) -> None:
        await self.outbox.finish(self._release(message_id), "delivered", claim_next=False)

    async def quarantine(self, message_id: int, reason: str) -> None:
        await self.outbox.finish(self._release(message_id), "quarantined", reason=reason, claim_next=False)

    async def wait(self, lane: str) -> None:
        event = self.outbox.waiter(lane)
        await event.wait()
        event.clear()

    def _release(self, message_id: int) -> OutboxMessage:
        for held in self._held.values():
            for index, message in enumerate(held):
                if message.id == message_id:
                    return held.pop(index)
        raise KeyError(f"message {message_id} was not claimed through this queue")
