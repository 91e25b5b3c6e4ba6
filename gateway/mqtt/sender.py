"""The MQTT lane sender: one outbox lane to the broker, QoS 1, a window of publishes in flight.

The MQTT counterpart of :class:`gateway.mllp.sender.MllpSender`, on the same outbox API
(``claim_many`` / ``finish_many``). Where MLLP has exactly one message in flight (design.md
§5), MQTT keeps up to ``mqtt.max_inflight`` QoS 1 publishes unacknowledged, so the broker's
round trip is paid once per window, not once per message:

* claim the lane's oldest pending messages (``claim_many``: now in flight, held by the outbox;
  messages past their TTL are expired by the outbox on the way, design.md §2 inv. 4) for the
  window and one window ahead, claiming again when less than half a window is left ahead;
* publish from that queue, in production order (inv. 3), while the window has room, and write
  the publishes at once (:meth:`MqttConnection.flush`);
* when the head's PUBACK arrives, publish into the freed places first -- no outbox work
  stands between a PUBACK and the next publish, so the broker always has work -- then record
  every acknowledged message at the head of the window as a group, in one transaction
  (``finish_many``), while the broker works.

A message leaves the lane only after its PUBACK (inv. 2). One the broker refuses (an MQTT 5
PUBACK reason code, e.g. an ACL denial) or one whose stored envelope is corrupt is quarantined
with the reason, counted and alerted by the outbox, and the lane behind it keeps flowing. One
whose TTL passes while it waits for a place in the window is expired, not published late. A
lost session fails the window; the next session first returns the lane's messages in flight
to pending (``reset_lane``) and claims them again, in order, so a consumer sees at most the window
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


class _Pipe:
    """One session's state of the lane: claimed messages waiting for a place in the window,
    the window of publishes awaiting their PUBACK, and outcomes not recorded yet."""

    def __init__(self, conn: MqttConnection) -> None:
        self.conn = conn
        self.claimed: deque[tuple[OutboxMessage, str, bytes]] = deque()
        self.window: deque[tuple[OutboxMessage, asyncio.Future[None]]] = deque()
        self.outcomes: list[Outcome] = []
        self.more = True  # the lane may hold pending messages not claimed yet


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
        self._pipe: _Pipe | None = None

    @property
    def unacknowledged(self) -> int:
        """Publishes of this lane awaiting their PUBACK now (at most ``window``)."""
        return len(self._pipe.window) if self._pipe is not None else 0

    @property
    def claim_below(self) -> int:
        """Claim again when fewer claimed messages than this wait: half a window."""
        return self.window - self.window // 2

    async def serve(self, conn: MqttConnection) -> None:
        """Send the lane over ``conn`` until the session ends (then it raises)."""
        await self.outbox.reset_lane(self.lane)  # unacknowledged by an earlier session: again, first
        wake = self.outbox.waiter(self.lane)  # set by every commit to the lane
        pipe = self._pipe = _Pipe(conn)
        try:
            while True:
                if (pipe.more or wake.is_set()) and len(pipe.claimed) < self.claim_below:
                    await self._claim(pipe, wake)
                self._publish(pipe)
                await self._record(pipe)
                if not pipe.window:
                    if not pipe.more and not wake.is_set():
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(RECLAIM_S):
                                await wake.wait()
                    pipe.more = True  # woken, or the periodic claim that makes a lost wake-up harmless
                    continue
                # Wait for the head's PUBACK; with claimed messages running low, also for commits.
                listen = not pipe.more and len(pipe.claimed) < self.claim_below
                await _settled_or_woken(pipe.window[0][1], wake if listen else None)
                lost = self._settle(pipe)
                if lost is None:
                    self._publish(pipe)  # into the freed places, before the bookkeeping
                await self._record(pipe)
                if lost is not None:
                    raise lost
        finally:
            self._pipe = None

    async def _claim(self, pipe: _Pipe, wake: asyncio.Event) -> None:
        """Claim enough for the free places of the window and one window ahead."""
        room = 2 * self.window - len(pipe.window) - len(pipe.claimed)
        wake.clear()  # before the claim: a commit after it sets it again
        claimed = await self.outbox.claim_many(self.lane, room)
        pipe.more = len(claimed) == room
        for message in claimed:
            try:
                topic, body = decode_envelope(message.payload, message.id)
            except EnvelopeError as exc:
                log.error("mqtt.bad_queued_message", lane=self.lane, message_id=message.id, error=str(exc))
                pipe.outcomes.append(Outcome(message, "quarantined", reason=str(exc)))
                continue
            pipe.claimed.append((message, topic, body))

    def _publish(self, pipe: _Pipe) -> None:
        """Fill the window from the claimed messages and write them at once."""
        now = time.time()
        published = False
        while pipe.claimed and len(pipe.window) < self.window:
            message, topic, body = pipe.claimed.popleft()
            if message.expires_at <= now:  # waited past its TTL for a place in the window
                reason = f"TTL of {message.ttl_s:g} s passed before sending"
                pipe.outcomes.append(Outcome(message, "expired", reason=reason))
                continue
            fut = pipe.conn.publish(topic, body, qos=1, retain=False, expiry_s=self._expiry(message, now))
            pipe.window.append((message, fut))
            published = True
        if published:
            pipe.conn.flush()

    def _expiry(self, message: OutboxMessage, now: float) -> int | None:
        if self.expiry_s is None:
            return None
        return max(1, math.ceil(message.expires_at - now))  # what is left of the TTL

    def _settle(self, pipe: _Pipe) -> BaseException | None:
        """Take the settled publishes off the head of the window, in order, as outcomes; the
        session's loss if a publish failed with it (what came before still counts)."""
        while pipe.window and pipe.window[0][1].done():
            message, fut = pipe.window[0]
            exc = fut.exception()
            if exc is None:
                pipe.outcomes.append(Outcome(message, "delivered"))
            elif isinstance(exc, MqttPublishError):
                # The broker refused this one message (e.g. an ACL on its topic): set it aside
                # with the reason, kept and counted, so the lane behind it keeps flowing (inv. 3).
                log.error("mqtt.publish_refused_quarantined", lane=self.lane, message_id=message.id, error=str(exc))
                pipe.outcomes.append(
                    Outcome(message, "quarantined", reason=f"broker refused the publish: {exc.reason}")
                )
            else:
                return exc
            pipe.window.popleft()
        return None

    async def _record(self, pipe: _Pipe) -> None:
        """Record the outcomes gathered so far, in one transaction."""
        if not pipe.outcomes:
            return
        outcomes, pipe.outcomes = pipe.outcomes, []
        await self.outbox.finish_many(outcomes)
        self.stats.delivered += sum(o.state == "delivered" for o in outcomes)


async def _settled_or_woken(head: asyncio.Future[None], wake: asyncio.Event | None) -> None:
    if wake is None:
        await asyncio.wait((head,))
        return
    waker = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait((head, waker), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waker.cancel()
