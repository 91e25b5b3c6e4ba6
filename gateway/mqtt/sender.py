"""The MQTT lane sender: one outbox lane to the broker, QoS 1, a window of publishes in flight.

The MQTT counterpart of :class:`gateway.mllp.sender.MllpSender`, on the same outbox API
(``claim_many`` / ``finish_many``). Where MLLP has exactly one message in flight (design.md
§5), MQTT keeps up to ``mqtt.max_inflight`` QoS 1 publishes unacknowledged, so the broker's
round trip is paid once per window, not once per message:

* claim the lane's oldest pending messages (``claim_many``: they are now in flight; messages
  past their TTL are expired by the outbox on the way, design.md §2 inv. 4) and publish them
  in production order (inv. 3);
* when the head's PUBACK arrives, every acknowledged message at the head of the window is
  finished as a group -- one transaction for all of them (``finish_many``);
* refill at half a window, so the pipe stays full: waiting for a whole window to drain would
  stall on the broker's Nagle/delayed-ACK interplay.

A message leaves the lane only after its PUBACK (inv. 2). One the broker refuses (an MQTT 5
PUBACK reason code, e.g. an ACL denial) or one whose stored envelope is corrupt is quarantined
with the reason, counted and alerted by the outbox, and the lane behind it keeps flowing. A
lost session fails the window; the next session first returns the lane's in-flight rows to
pending (``reset_lane``) and claims them again, in order, so a consumer sees at most the window
twice (QoS 1 at-least-once; it drops repeats by ``message_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque

import structlog

from gateway.mqtt.connection import MqttConnection
from gateway.mqtt.envelope import EnvelopeError, decode_envelope
from gateway.mqtt.errors import MqttPublishError
from gateway.mqtt.stats import PublisherStats
from gateway.outbox import Outbox
from gateway.outbox.model import OutboxMessage, Outcome

log = structlog.get_logger("pumpgw.mqtt")

# Claim again even without a wake-up, so a missed notification costs latency, not messages.
RECLAIM_S = 5.0


class MqttLaneSender:
    def __init__(
        self,
        outbox: Outbox,
        lane: str,
        *,
        window: int,
        expiry_s: float | None,
        stats: PublisherStats,
    ) -> None:
        """``expiry_s``: publish with an MQTT 5 message expiry (what is left of each message's
        TTL), so a broker does not hand a stale alarm to a subscriber that reconnects late."""
        self.outbox = outbox
        self.lane = lane
        self.window = window
        self.expiry_s = expiry_s
        self.stats = stats

    @property
    def refill_at(self) -> int:
        """Free places in the window worth a claim: half of it, so claims come in batches."""
        return self.window - self.window // 2

    async def serve(self, conn: MqttConnection) -> None:
        """Send the lane over ``conn`` until the session ends (then it raises)."""
        await self.outbox.reset_lane(self.lane)  # unacknowledged by an earlier session: again, first
        wake = self.outbox.waiter(self.lane)  # set by every commit to the lane
        in_flight: deque[tuple[OutboxMessage, asyncio.Future[None]]] = deque()
        more = True  # the lane may hold pending messages (after the reset: unknown)
        while True:
            if (more or wake.is_set()) and self.window - len(in_flight) >= self.refill_at:
                more = await self._publish(conn, in_flight, wake)
            if not in_flight:
                if not more:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(RECLAIM_S):
                            await wake.wait()
                    more = True  # woken, or the periodic claim that makes a lost wake-up harmless
                continue
            # Wait for the head's PUBACK; with room for a batch, also for new messages.
            listen = not more and self.window - len(in_flight) >= self.refill_at
            await self._settled_or_woken(in_flight[0][1], wake if listen else None)
            outcomes, lost = self._settle(in_flight)
            if lost is None and (more or wake.is_set()) and self.window - len(in_flight) >= self.refill_at:
                # Refill before the bookkeeping: the broker works on the next publishes while
                # the acknowledged ones are recorded.
                more = await self._publish(conn, in_flight, wake)
            if outcomes:
                await self.outbox.finish_many(outcomes)
                self.stats.delivered += sum(o.state == "delivered" for o in outcomes)
            if lost is not None:
                raise lost

    @staticmethod
    async def _settled_or_woken(head: asyncio.Future[None], wake: asyncio.Event | None) -> None:
        if wake is None:
            await asyncio.wait((head,))
            return
        waker = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait((head, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()

    async def _publish(
        self,
        conn: MqttConnection,
        in_flight: deque[tuple[OutboxMessage, asyncio.Future[None]]],
        wake: asyncio.Event,
    ) -> bool:
        """Claim up to the window's free places and publish them; True if that filled them
        (more may be waiting)."""
        room = self.window - len(in_flight)
        wake.clear()  # before the claim: a commit after it sets it again
        claimed = await self.outbox.claim_many(self.lane, room)
        corrupt: list[Outcome] = []
        for message in claimed:
            try:
                topic, body = decode_envelope(message.payload, message.id)
            except EnvelopeError as exc:
                log.error("mqtt.bad_queued_message", lane=self.lane, message_id=message.id, error=str(exc))
                corrupt.append(Outcome(message, "quarantined", reason=str(exc)))
                continue
            in_flight.append((message, conn.publish(topic, body, qos=1, retain=False, expiry_s=self._expiry(message))))
        conn.flush()
        if corrupt:
            await self.outbox.finish_many(corrupt)
        return len(claimed) == room

    def _expiry(self, message: OutboxMessage) -> int | None:
        if self.expiry_s is None:
            return None
        return max(1, math.ceil(message.expires_at - time.time()))  # what is left of the TTL

    def _settle(
        self, in_flight: deque[tuple[OutboxMessage, asyncio.Future[None]]]
    ) -> tuple[list[Outcome], BaseException | None]:
        """Take the settled publishes off the head of the window, in order: their outcomes,
        and the session's loss if a publish failed with it (what came before still counts)."""
        outcomes: list[Outcome] = []
        while in_flight and in_flight[0][1].done():
            message, fut = in_flight[0]
            exc = fut.exception()
            if exc is None:
                outcomes.append(Outcome(message, "delivered"))
            elif isinstance(exc, MqttPublishError):
                # The broker refused this one message (e.g. an ACL on its topic): set it aside
                # with the reason, kept and counted, so the lane behind it keeps flowing (inv. 3).
                log.error("mqtt.publish_refused_quarantined", lane=self.lane, message_id=message.id, error=str(exc))
                outcomes.append(Outcome(message, "quarantined", reason=f"broker refused the publish: {exc.reason}"))
            else:
                return outcomes, exc
            in_flight.popleft()
        return outcomes, None
