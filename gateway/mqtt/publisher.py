"""The MQTT sender: retained live state, durable events and alarms, reconnection.

Two delivery classes (docs/mqtt.md):

* **Latest state** (status, inventory, per-pump availability and state) is coalesced: only
  the newest payload per topic is kept, in memory, and published retained (QoS 1). After
  every (re)connect and on a rebirth request all of it is published again, status birth first.
* **Events and alarms** are rendered by :meth:`MqttPublisher.render_event` (no I/O) and
  committed by the pipeline in the same outbox transaction as the event's HL7 messages
  (:meth:`enqueue_event` commits one on its own), then sent from there in production order, QoS 1, up to
  ``mqtt.max_inflight`` at a time per lane; a message is marked delivered only after its
  PUBACK. A lost session resends every unacknowledged message from the queue, so a consumer
  sees at most the in-flight window twice (QoS 1 at-least-once) and can drop repeats by
  ``message_id``. Alarms have their own lane so they never wait behind events
  (design.md §2 inv. 4).

Reconnection: full-jitter exponential backoff with a cap (``mqtt.retry``); refused
credentials or unusable local TLS/password files wait the cap and are logged at ERROR
each time, because a person has to act.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from drivers.model import PumpIdentity, PumpSnapshot
from gateway.backoff import Backoff
from gateway.config.model import MqttConfig
from gateway.events.model import EventKind, PumpEvent
from gateway.lanes import MQTT_ALARMS, MQTT_EVENTS
from gateway.mqtt.connection import MessageHandler, MqttConnection, Will
from gateway.mqtt.errors import MqttAuthError, MqttConnectionLost, MqttError, MqttPublishError, MqttSetupError
from gateway.mqtt.payloads import (
    Availability,
    alarm_payload,
    availability_payload,
    event_message_id,
    event_payload,
    gateway_alert_payload,
    inventory_payload,
    state_payload,
    status_payload,
)
from gateway.mqtt.queue import DurableQueue, EnvelopeError, decode_envelope, encode_envelope
from gateway.mqtt.settings import connect_settings
from gateway.mqtt.topics import Topics
from gateway.outbox.model import NewMessage

log = structlog.get_logger("pumpgw.mqtt")

# Re-claim even without a wake-up, so a missed notification costs latency, not messages.
_RECLAIM_S = 5.0
_STOP_TIMEOUT_S = 2.0
# A rebirth request carries no data we use; anything longer than this is not one (refused
# before any parsing, counted and logged).
MAX_REBIRTH_PAYLOAD_BYTES = 1024


@dataclass(frozen=True, slots=True)
class MqttLanes:
    """Outbox lane names of the MQTT destination (one sender task each)."""

    events: str = MQTT_EVENTS
    alarms: str = MQTT_ALARMS


@dataclass(slots=True)
class PublisherStats:
    """Health counters (connection state, deliveries, rebirths); tests read them."""

    connected: bool = False
    connect_attempts: int = 0
    sessions: int = 0
    auth_failures: int = 0
    last_error: str | None = None
    last_delay_s: float | None = None
    delivered: int = 0
    retained_published: int = 0
    rebirths: int = 0
    rebirths_coalesced: int = 0  # requests within rebirth_min_interval_s of the last rebirth
    inbound_refused: int = 0  # inbound payloads over their size limit
    heartbeats: int = 0


class _Stopping(Exception):
    """Raised inside a session's task group to end it for a requested stop."""


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


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MqttPublisher:
    def __init__(
        self,
        config: MqttConfig,
        *,
        site: str,
        gateway_id: str,
        queue: DurableQueue,
        version: str,
        config_hash: str,
        lanes: MqttLanes = MqttLanes(),
        ward: str | None = None,
        beds: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.topics = Topics(config.topic_prefix, site, gateway_id)
        self.lanes = lanes
        self.stats = PublisherStats()
        self._queue = queue
        self._version = version
        self._config_hash = config_hash
        self._retained: dict[str, bytes] = {}
        self._dirty: dict[str, None] = {}
        self._dirty_event = asyncio.Event()
        self._availability: dict[str, Availability] = {}
        self._identities: dict[str, PumpIdentity | None] = {}
        self._last_seen: dict[str, datetime] = {}
        self._library_version: str | None = None
        self._ward = ward
        # per pump: what the identity registry knows (asset tag, first seen ...) and the bed
        self._slots: dict[str, dict[str, Any]] = {p: {"bed": b} for p, b in (beds or {}).items() if b}
        self._feeds: dict[str, MessageHandler] = {}
        self._stop = asyncio.Event()
        self._online = asyncio.Event()
        self._session = ""
        self._started_at = _utcnow()
        self._expiring: set[str] = set()  # retained topics published with MQTT 5 message expiry
        self._birth_at: datetime | None = None
        self._last_rebirth = -math.inf
        self._rebirth_timer: asyncio.TimerHandle | None = None

    # ---- producer side (called by the router; never blocks on the broker) ----------------

    def register_pumps(self, pump_ids: Iterable[str]) -> None:
        """Declare the configured pumps: listed in the inventory, 'offline' until first seen."""
        for pump_id in pump_ids:
            self._identities.setdefault(pump_id, None)
            if pump_id not in self._availability:
                self.set_availability(pump_id, "offline")
        self._mark_inventory()

    def set_availability(self, pump_id: str, availability: Availability, *, since: datetime | None = None) -> None:
        if self._availability.get(pump_id) == availability:
            return
        self._availability[pump_id] = availability
        # "offline" stays retained for good; anything else expires unless the heartbeat
        # refreshes it, so a dead gateway's pumps stop looking online (docs/mqtt.md).
        self._set(
            self.topics.availability(pump_id),
            availability_payload(pump_id, availability, since=since or _utcnow()),
            expires=availability != "offline",
        )

    def update_state(
        self,
        snapshot: PumpSnapshot,
        *,
        verdicts: Sequence[Mapping[str, Any]] | None = None,
        patient: Mapping[str, str] | None = None,
    ) -> None:
        """Replace the pump's pending state (coalesced) and mark it online."""
        pump_id = snapshot.pump_id
        payload = state_payload(
            snapshot, verdicts=verdicts, include_patient_ids=self.config.include_patient_ids, patient=patient
        )
        self._set(self.topics.state(pump_id), payload)
        self._last_seen[pump_id] = snapshot.received_at
        if self._identities.get(pump_id) != snapshot.identity:
            self._identities[pump_id] = snapshot.identity
            self._mark_inventory()
        self.set_availability(pump_id, "online", since=snapshot.received_at)

    def set_central_library_version(self, version: str | None) -> None:
        if version != self._library_version:
            self._library_version = version
            self._mark_inventory()

    def set_slot(self, pump_id: str, fields: Mapping[str, Any]) -> None:
        """Registry facts of one slot for the retained inventory (asset tag, first seen, udi ...)."""
        merged = {**self._slots.get(pump_id, {}), **{k: v for k, v in fields.items() if v is not None}}
        if merged != self._slots.get(pump_id):
            self._slots[pump_id] = merged
            self._mark_inventory()

    def add_feed(self, topic: str, handler: MessageHandler) -> None:
        """Subscribe to ``topic`` in every session and hand its messages to ``handler``.

        For data the gateway *takes in* (the signed drug library, gateway/mqtt/library_feed.py).
        Nothing subscribed here may ever lead to a command to a pump (design.md §2 inv. 1).
        Call before :meth:`run`; the handler runs on the event loop and must not block.
        """
        self._feeds[topic] = handler

    def set_retained(self, topic: str, payload: bytes) -> None:
        """Publish ``payload`` retained on ``topic`` now and again after every reconnect."""
        self._set(topic, payload)

    def render_event(self, event: PumpEvent) -> NewMessage:
        """The event's durable MQTT message (topic envelope, lane, TTL), rendered without I/O.

        The pipeline commits it in the same transaction as the event's HL7 messages and the
        pump's clinical state (design.md §2 inv. 10), then calls :meth:`event_committed`.
        """
        include = self.config.include_patient_ids
        message_id = event_message_id(event)
        if event.is_alarm:
            topic = self.topics.alarms(event.pump_id)
            body = alarm_payload(event, include_patient_ids=include, message_id=message_id)
            lane, kind, ttl = self.lanes.alarms, "mqtt-alarm", self.config.alarm_ttl_s
        else:
            topic = self.topics.events(event.pump_id)
            body = event_payload(event, include_patient_ids=include, message_id=message_id)
            lane, kind, ttl = self.lanes.events, "mqtt-event", self.config.event_ttl_s
        return NewMessage(lane=lane, kind=kind, control_id=message_id, payload=encode_envelope(topic, body), ttl_s=ttl)

    def event_committed(self, event: PumpEvent) -> None:
        """Live-state consequences of a committed event (coalesced availability)."""
        if event.kind is EventKind.COMM_LOST:
            self.set_availability(event.pump_id, "comm-lost", since=event.occurred_at)
        elif event.kind is EventKind.COMM_RESTORED:
            self.set_availability(event.pump_id, "online", since=event.occurred_at)

    async def enqueue_event(self, event: PumpEvent) -> None:
        """Commit an event or alarm to the durable queue on its own; it is published from there."""
        m = self.render_event(event)
        await self._queue.enqueue(lane=m.lane, kind=m.kind, control_id=m.control_id, payload=m.payload, ttl_s=m.ttl_s)
        self.event_committed(event)

    async def enqueue_alert(self, alert: str, details: Mapping[str, object], *, occurred_at: datetime) -> None:
        """Commit a gateway technical alert to the durable events lane (topic ``.../alerts``)."""
        message_id = uuid.uuid4().hex
        body = gateway_alert_payload(
            message_id=message_id,
            alert=alert,
            gateway=self.topics.gateway,
            occurred_at=occurred_at,
            details=details,
        )
        await self._queue.enqueue(
            lane=self.lanes.events,
            kind="mqtt-alert",
            control_id=message_id,
            payload=encode_envelope(self.topics.alerts, body),
            ttl_s=self.config.event_ttl_s,
        )

    # ---- lifecycle ---------------------------------------------------------------------

    async def wait_online(self) -> None:
        """Return once a session's birth ("online" status) was acknowledged by the broker."""
        await self._online.wait()

    def stop(self) -> None:
        """Ask :meth:`run` to publish "offline", disconnect cleanly and return."""
        self._stop.set()

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff; returns after :meth:`stop`. Owns its tasks."""
        try:
            await self._run()
        finally:
            if self._rebirth_timer is not None:
                self._rebirth_timer.cancel()
                self._rebirth_timer = None

    async def _run(self) -> None:
        backoff = Backoff(self.config.retry.initial_backoff_s, self.config.retry.max_backoff_s)
        failing_since: str | None = None
        while not self._stop.is_set():
            self.stats.connect_attempts += 1
            self._session = uuid.uuid4().hex[:16]
            try:
                conn = await self._open()
            except (MqttAuthError, MqttSetupError) as exc:
                self.stats.auth_failures += isinstance(exc, MqttAuthError)
                self._note_error(exc)
                delay = backoff.longest()
                log.error("mqtt.connect_refused", error=str(exc), retry_in_s=round(delay, 3))
            except MqttError as exc:
                self._note_error(exc)
                delay = backoff.next_delay()
                if failing_since is None:  # log the first failure, not every retry
                    log.warning("mqtt.connect_failed", error=str(exc), retry_in_s=round(delay, 3))
                failing_since = failing_since or str(exc)
            else:
                backoff.reset()
                if failing_since is not None:
                    log.info("mqtt.reconnected", host=self.config.host, port=self.config.port)
                failing_since = None
                delay = await self._serve_session(conn, backoff)
            self.stats.last_delay_s = delay
            if self._stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    async def _open(self) -> MqttConnection:
        settings = connect_settings(self.config, default_client_id=f"pumpgw-{self.topics.site}-{self.topics.gateway}")
        # since=None: the time of death is not known when the will is written (StatusPayload).
        will = Will(self.topics.status, self._status("offline", since=None, cause="will"), qos=1, retain=True)
        return await MqttConnection.open(
            settings,
            will=will,
            subscriptions=(self.topics.rebirth, self.topics.rebirth_all, *self._feeds),
            on_message=self._on_message,
        )

    async def _serve_session(self, conn: MqttConnection, backoff: Backoff) -> float:
        """Run one session until it ends; return the delay before the next attempt."""
        self.stats.sessions += 1
        self.stats.connected = True
        delay = 0.0
        try:
            try:
                await self._serve(conn)
            finally:
                _forget_taskgroup_cancellation()
        except* _Stopping:
            pass
        except* MqttPublishError as eg:
            self._note_error(eg.exceptions[0])
            delay = backoff.longest()
            log.error("mqtt.publish_refused", error=str(eg.exceptions[0]), retry_in_s=round(delay, 3))
        except* MqttConnectionLost as eg:
            delay = backoff.next_delay()
            if not self._stop.is_set():  # at a stop, in-flight publishes fail by design
                self._note_error(eg.exceptions[0])
                log.warning("mqtt.connection_lost", error=str(eg.exceptions[0]), retry_in_s=round(delay, 3))
        finally:
            self.stats.connected = False
            self._online.clear()
            conn.abort()
        return delay

    async def _serve(self, conn: MqttConnection) -> None:
        # Birth first (Sparkplug's NBIRTH-before-DBIRTH), then everything retained again.
        self._birth_at = _utcnow()
        self._retained[self.topics.status] = self._status("online", since=self._birth_at, cause="birth")
        self._expiring.add(self.topics.status)
        await conn.publish(
            self.topics.status, self._retained[self.topics.status], qos=1, retain=True, expiry_s=self._expiry_s
        )
        self._online.set()
        log.info("mqtt.online", host=self.config.host, port=self.config.port, session=self._session)
        self._mark_all_dirty(include_status=False)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch(conn), name="mqtt-watch")
            tg.create_task(self._retained_loop(conn), name="mqtt-retained")
            tg.create_task(self._heartbeat_loop(), name="mqtt-heartbeat")
            tg.create_task(self._lane_loop(conn, self.lanes.alarms, self.config.alarm_ttl_s), name="mqtt-alarms")
            tg.create_task(self._lane_loop(conn, self.lanes.events, None), name="mqtt-events")

    async def _watch(self, conn: MqttConnection) -> None:
        stop = asyncio.create_task(self._stop.wait(), name="mqtt-stop-wait")
        closed = asyncio.create_task(conn.wait_closed(), name="mqtt-closed-wait")
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
            await conn.wait_closed()  # raises MqttConnectionLost
            raise MqttConnectionLost("session closed", host=self.config.host, port=self.config.port)
        # Clean shutdown: the broker discards the Last Will on DISCONNECT, so say it ourselves:
        # every pump goes offline with the gateway, then the gateway (retained, no expiry).
        stopped_at = _utcnow()
        final = {
            self.topics.availability(p): availability_payload(p, "offline", since=stopped_at)
            for p in self._availability
        }
        final[self.topics.status] = self._status("offline", since=stopped_at, cause="stop")
        self._retained.update(final)
        self._expiring.difference_update(final)
        with contextlib.suppress(MqttError, TimeoutError):
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                futures = [conn.publish(t, body, qos=1, retain=True) for t, body in final.items()]
                for fut in futures:
                    await fut
        await conn.disconnect(_STOP_TIMEOUT_S)
        log.info("mqtt.offline", reason="stop requested")
        raise _Stopping()

    async def _retained_loop(self, conn: MqttConnection) -> None:
        while True:
            await self._dirty_event.wait()
            self._dirty_event.clear()
            topics = list(self._dirty)
            self._dirty.clear()
            try:
                futures = [
                    conn.publish(
                        t,
                        self._retained[t],
                        qos=1,
                        retain=True,
                        expiry_s=self._expiry_s if t in self._expiring else None,
                    )
                    for t in topics
                ]
                for fut in futures:
                    await fut
            except BaseException:
                for t in topics:  # not known to be acknowledged: publish again next session
                    self._dirty.setdefault(t, None)
                raise
            self.stats.retained_published += len(topics)

    async def _heartbeat_loop(self) -> None:
        """Refresh the retained status (``heartbeat_at``) and every expiring availability.

        Each refresh renews their MQTT 5 message expiry; when the gateway dies and no will
        reaches the broker (broker down at the time), they expire within
        ``stale_after_intervals`` intervals instead of showing "online" for ever.
        """
        while True:
            await asyncio.sleep(self.config.heartbeat_interval_s)
            self.stats.heartbeats += 1
            self._set(self.topics.status, self._status("online", since=self._birth_at, cause="heartbeat"), expires=True)
            for topic in [t for t in self._expiring if t != self.topics.status]:
                self._dirty[topic] = None
            self._dirty_event.set()

    @property
    def _expiry_s(self) -> int:
        return math.ceil(self.config.heartbeat_interval_s * self.config.stale_after_intervals)

    async def _lane_loop(self, conn: MqttConnection, lane: str, expiry_s: float | None) -> None:
        """Send one lane in order with a sliding window of ``max_inflight`` unacknowledged messages.

        ``claim`` returns the head of the lane, in-flight messages included (they are not
        delivered yet), so asking for ``in_flight + window`` and skipping known ids yields the
        next messages in order. Refilling at half a window keeps the pipe full; stopping to
        wait for a whole batch would stall on the broker's Nagle/delayed-ACK interplay.
        """
        window = self.config.max_inflight
        expiry = int(expiry_s) if expiry_s is not None else None
        in_flight: deque[tuple[int, asyncio.Future[None]]] = deque()
        ids: set[int] = set()
        while True:
            if len(in_flight) <= window // 2:
                for message in await self._queue.claim(lane, len(in_flight) + window):
                    if message.id in ids:
                        continue
                    try:
                        topic, body = decode_envelope(message.payload, message.id)
                    except EnvelopeError as exc:
                        log.error("mqtt.bad_queued_message", lane=lane, message_id=message.id, error=str(exc))
                        await self._queue.quarantine(message.id, str(exc))
                        continue
                    ids.add(message.id)
                    expires_at = getattr(message, "expires_at", None)
                    message_expiry = expiry
                    if expiry is not None and expires_at is not None:  # MQTT 5 expiry: what is left of the TTL
                        message_expiry = max(1, math.ceil(expires_at - time.time()))
                    in_flight.append(
                        (message.id, conn.publish(topic, body, qos=1, retain=False, expiry_s=message_expiry))
                    )
            if not in_flight:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_RECLAIM_S):
                        await self._queue.wait(lane)
                continue
            message_id, fut = in_flight[0]
            try:
                await fut
            except MqttPublishError as exc:
                # The broker refused this one message (e.g. an ACL on its topic): set it aside
                # with the reason, kept and counted, so the lane behind it keeps flowing (inv. 3).
                in_flight.popleft()
                ids.discard(message_id)
                log.error("mqtt.publish_refused_quarantined", lane=lane, message_id=message_id, error=str(exc))
                await self._queue.quarantine(message_id, f"broker refused the publish: {exc.reason}")
                continue
            in_flight.popleft()
            ids.discard(message_id)
            await self._queue.mark_delivered(message_id)
            self.stats.delivered += 1

    # ---- internals -----------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        feed = self._feeds.get(topic)
        if feed is not None:
            feed(topic, payload, retained)
            return
        # A retained rebirth request would fire on every reconnect; we republish then anyway.
        if retained or topic not in (self.topics.rebirth, self.topics.rebirth_all):
            return
        if len(payload) > MAX_REBIRTH_PAYLOAD_BYTES:  # checked before anything looks inside
            self.stats.inbound_refused += 1
            log.warning("mqtt.inbound_refused", topic=topic, bytes=len(payload), limit=MAX_REBIRTH_PAYLOAD_BYTES)
            return
        # Rate limit: a consumer (or an attacker) asking in a loop gets one republish per
        # rebirth_min_interval_s; requests in between are coalesced into one at its end.
        wait = self._last_rebirth + self.config.rebirth_min_interval_s - time.monotonic()
        if wait > 0:
            self.stats.rebirths_coalesced += 1
            if self._rebirth_timer is None:
                self._rebirth_timer = asyncio.get_running_loop().call_later(wait, self._rebirth, topic)
            return
        self._rebirth(topic)

    def _rebirth(self, topic: str) -> None:
        self._rebirth_timer = None
        self._last_rebirth = time.monotonic()
        self.stats.rebirths += 1
        log.info("mqtt.rebirth_requested", topic=topic)
        self._mark_all_dirty(include_status=True)

    def _status(self, state: str, *, since: datetime | None, cause: str) -> bytes:
        online = state == "online"
        return status_payload(
            state=state,  # type: ignore[arg-type]
            site=self.topics.site,
            gateway=self.topics.gateway,
            version=self._version,
            config_hash=self._config_hash,
            session=self._session,
            since=since,
            ward=self._ward,
            heartbeat_interval_s=self.config.heartbeat_interval_s,
            heartbeat_at=_utcnow() if online else None,
            cause=cause,  # type: ignore[arg-type]
        )

    def _set(self, topic: str, payload: bytes, *, expires: bool = False) -> None:
        if expires:
            self._expiring.add(topic)
        else:
            self._expiring.discard(topic)
        self._retained[topic] = payload
        self._dirty[topic] = None
        self._dirty_event.set()

    def _mark_inventory(self) -> None:
        self._set(
            self.topics.inventory,
            inventory_payload(
                site=self.topics.site,
                gateway=self.topics.gateway,
                identities=self._identities,
                last_seen=self._last_seen,
                generated_at=_utcnow(),
                central_library_version=self._library_version,
                ward=self._ward,
                slots=self._slots,
            ),
        )

    def _mark_all_dirty(self, *, include_status: bool) -> None:
        order = [self.topics.status] if include_status else []
        order += [t for t in self._retained if t != self.topics.status]
        for t in order:
            self._dirty.pop(t, None)
        self._dirty = {**dict.fromkeys(order), **self._dirty}
        self._dirty_event.set()

    def _note_error(self, exc: BaseException) -> None:
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
