"""One connected MQTT session of the gateway: birth, retained state, heartbeat, lanes, clean stop.

Birth first (Sparkplug's NBIRTH before DBIRTH): the retained "online" status, then every
latest-state topic again, then whatever becomes due; beside it the heartbeat and one
:class:`~gateway.mqtt.sender.MqttLaneSender` per outbox lane. All of them are tasks of one
``TaskGroup``: the first to fail (the connection lost, a publish refused) ends the session
and the others with it; :class:`~gateway.mqtt.reconnect.Reconnector` decides what comes next.

A requested stop ends the session cleanly: the broker discards the Last Will on DISCONNECT,
so the gateway says "offline" itself, for every pump and then for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
from collections.abc import Sequence
from datetime import datetime

import structlog

from gateway.config.model import MqttConfig
from gateway.mqtt.connection import MqttConnection
from gateway.mqtt.errors import MqttConnectionLost, MqttError
from gateway.mqtt.producer import MqttProducer, utcnow
from gateway.mqtt.retained import RetainedTopics
from gateway.mqtt.sender import MqttLaneSender
from gateway.mqtt.stats import PublisherStats

log = structlog.get_logger("pumpgw.mqtt")

STOP_TIMEOUT_S = 2.0


class _Stopping(Exception):
    """Raised inside the session's task group to end it for a requested stop."""


def _forget_taskgroup_cancellation() -> None:
    """Undo the cancellation a failed ``TaskGroup`` leaves on its parent task (Python 3.11).

    When a child fails, a 3.11 TaskGroup cancels the parent and does not take that request
    back (3.12 does). On 3.11.2 -- Debian 12's python3 -- every later ``asyncio.timeout`` in the
    parent then turns its expiry into ``CancelledError``: the publisher would silently die at
    its first reconnect backoff. A genuine cancellation still propagates (its exception is
    already raised); only the stale request count is reset.
    """
    task = asyncio.current_task()
    if sys.version_info < (3, 12) and task is not None and task.cancelling():
        task.uncancel()


class GatewaySession:
    def __init__(
        self,
        conn: MqttConnection,
        session: str,
        *,
        config: MqttConfig,
        producer: MqttProducer,
        retained: RetainedTopics,
        senders: Sequence[MqttLaneSender],
        stats: PublisherStats,
        stop: asyncio.Event,
        online: asyncio.Event,
    ) -> None:
        self.conn = conn
        self.session = session
        self.config = config
        self.topics = producer.topics
        self._producer = producer
        self._retained = retained
        self._senders = senders
        self._stats = stats
        self._stop = stop
        self._online = online
        self._birth_at: datetime | None = None

    @property
    def expiry_s(self) -> int:
        """MQTT 5 message expiry of the expiring retained topics: a few missed heartbeats."""
        return math.ceil(self.config.heartbeat_interval_s * self.config.stale_after_intervals)

    async def run(self) -> None:
        """Serve until the connection ends (raises) or a stop was requested (returns)."""
        try:
            try:
                await self._serve()
            finally:
                _forget_taskgroup_cancellation()
                self._online.clear()
        except* _Stopping:
            pass

    async def _serve(self) -> None:
        status = self.topics.status
        self._birth_at = utcnow()
        birth = self._producer.status("online", session=self.session, since=self._birth_at, cause="birth")
        self._retained.set(status, birth, expires=True, due=False)
        await self.conn.publish(status, birth, qos=1, retain=True, expiry_s=self.expiry_s)
        self._online.set()
        log.info("mqtt.online", host=self.config.host, port=self.config.port, session=self.session)
        self._retained.all_due(skip=status)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch(), name="mqtt-watch")
            tg.create_task(self._publish_retained(), name="mqtt-retained")
            tg.create_task(self._heartbeat(), name="mqtt-heartbeat")
            for sender in self._senders:
                tg.create_task(sender.serve(self.conn), name=f"mqtt-send-{sender.lane}")

    async def _watch(self) -> None:
        stop = asyncio.create_task(self._stop.wait(), name="mqtt-stop-wait")
        closed = asyncio.create_task(self.conn.wait_closed(), name="mqtt-closed-wait")
        try:
            await asyncio.wait((stop, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop
            with contextlib.suppress(asyncio.CancelledError, MqttError):
                await closed
        if not self._stop.is_set():
            await self.conn.wait_closed()  # raises MqttConnectionLost
            raise MqttConnectionLost("session closed", host=self.config.host, port=self.config.port)
        final = self._producer.offline_at_stop(session=self.session, at=utcnow())
        with contextlib.suppress(MqttError, TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT_S):
                futures = [self.conn.publish(t, body, qos=1, retain=True) for t, body in final.items()]
                for fut in futures:
                    await fut
        await self.conn.disconnect(STOP_TIMEOUT_S)
        log.info("mqtt.offline", reason="stop requested")
        raise _Stopping()

    async def _publish_retained(self) -> None:
        retained = self._retained
        while True:
            await retained.changed.wait()
            topics = retained.take_due()
            try:
                futures = [
                    self.conn.publish(
                        t,
                        retained.payload(t),
                        qos=1,
                        retain=True,
                        expiry_s=self.expiry_s if retained.expires(t) else None,
                    )
                    for t in topics
                ]
                self.conn.flush()
                for fut in futures:
                    await fut
            except BaseException:
                retained.mark_due(topics)  # not known to be acknowledged: publish again next session
                raise
            self._stats.retained_published += len(topics)

    async def _heartbeat(self) -> None:
        """Refresh the retained status (``heartbeat_at``) and every expiring availability.

        Each refresh renews their MQTT 5 message expiry; when the gateway dies and no will
        reaches the broker (broker down at the time), they expire within
        ``stale_after_intervals`` intervals instead of showing "online" for ever.
        """
        status = self.topics.status
        while True:
            await asyncio.sleep(self.config.heartbeat_interval_s)
            self._stats.heartbeats += 1
            beat = self._producer.status("online", session=self.session, since=self._birth_at, cause="heartbeat")
            self._retained.set(status, beat, expires=True)
            self._retained.mark_due(t for t in self._retained.expiring() if t != status)
