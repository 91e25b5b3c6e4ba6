"""The MQTT side of the gateway as the daemon composes it: one object, four parts.

* :class:`~gateway.mqtt.producer.MqttProducer` renders what the gateway has to say: latest
  state into :class:`~gateway.mqtt.retained.RetainedTopics`, events, alarms and alerts into
  the outbox (no I/O towards the broker; the pipeline and the router call it);
* :class:`~gateway.mqtt.reconnect.Reconnector` keeps a connection up (backoff, logging);
* :class:`~gateway.mqtt.session.GatewaySession` serves one connection: birth, retained
  topics, heartbeat, clean stop;
* one :class:`~gateway.mqtt.sender.MqttLaneSender` per outbox lane (events, alarms) sends
  the durable messages with a window of QoS 1 publishes in flight.

:class:`MqttPublisher` wires them together and is what the rest of the gateway holds: the
pipeline (``update_state``, ``render_event``, ``event_committed``), the alert forwarder
(``enqueue_alert``), the drug-library feed (``add_feed``, ``set_retained``), the supervisor
(``run``, ``stop``) and the status page (``stats``). docs/mqtt.md describes the behaviour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from drivers.model import PumpSnapshot
from gateway.config.model import MqttConfig
from gateway.druglib.verdicts import VerdictSet
from gateway.events.model import PumpEvent
from gateway.mqtt.connection import MessageHandler, MqttConnection
from gateway.mqtt.inbound import InboundRouter
from gateway.mqtt.models import Availability
from gateway.mqtt.producer import DEFAULT_LANES, MqttLanes, MqttProducer
from gateway.mqtt.reconnect import Reconnector
from gateway.mqtt.retained import RetainedTopics
from gateway.mqtt.sender import MqttLaneSender
from gateway.mqtt.session import GatewaySession
from gateway.mqtt.settings import Will, connect_settings
from gateway.mqtt.stats import PublisherStats
from gateway.mqtt.topics import Topics
from gateway.outbox import Outbox
from gateway.outbox.model import NewMessage

__all__ = ["MqttLanes", "MqttPublisher", "PublisherStats"]


class MqttPublisher:
    def __init__(
        self,
        config: MqttConfig,
        *,
        site: str,
        gateway_id: str,
        outbox: Outbox,
        version: str,
        config_hash: str,
        lanes: MqttLanes = DEFAULT_LANES,
        ward: str | None = None,
        beds: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.topics = Topics(config.topic_prefix, site, gateway_id)
        self.lanes = lanes
        self.stats = PublisherStats()
        self.retained = RetainedTopics()
        self.producer = MqttProducer(
            config,
            self.topics,
            outbox,
            self.retained,
            version=version,
            config_hash=config_hash,
            lanes=lanes,
            ward=ward,
            beds=beds,
        )
        self.inbound = InboundRouter(config, self.topics, self.stats, on_rebirth=self._rebirth)
        # Alarms first: their sender starts first, and with MQTT 5 an alarm carries the rest
        # of its TTL as message expiry (design.md §2 inv. 4).
        self.senders = (
            MqttLaneSender(
                outbox, lanes.alarms, window=config.max_inflight, expiry_s=config.alarm_ttl_s, stats=self.stats
            ),
            MqttLaneSender(outbox, lanes.events, window=config.max_inflight, expiry_s=None, stats=self.stats),
        )
        self._stop = asyncio.Event()
        self._online = asyncio.Event()

    # ---- what the gateway says (never blocks on the broker) -----------------------------------

    def register_pumps(self, pump_ids: Iterable[str]) -> None:
        self.producer.register_pumps(pump_ids)

    def set_availability(self, pump_id: str, availability: Availability, *, since: datetime | None = None) -> None:
        self.producer.set_availability(pump_id, availability, since=since)

    def update_state(
        self,
        snapshot: PumpSnapshot,
        *,
        verdicts: Mapping[str, VerdictSet] | None = None,
        patient: Mapping[str, str] | None = None,
    ) -> None:
        self.producer.update_state(snapshot, verdicts=verdicts, patient=patient)

    def set_central_library_version(self, version: str | None) -> None:
        self.producer.set_central_library_version(version)

    def set_slot(self, pump_id: str, fields: Mapping[str, Any]) -> None:
        self.producer.set_slot(pump_id, fields)

    def set_retained(self, topic: str, payload: bytes) -> None:
        self.producer.set_retained(topic, payload)

    def render_event(self, event: PumpEvent) -> NewMessage:
        return self.producer.render_event(event)

    def event_committed(self, event: PumpEvent) -> None:
        self.producer.event_committed(event)

    async def enqueue_event(self, event: PumpEvent) -> None:
        await self.producer.enqueue_event(event)

    async def enqueue_alert(self, alert: str, details: Mapping[str, object], *, occurred_at: datetime) -> None:
        await self.producer.enqueue_alert(alert, details, occurred_at=occurred_at)

    def add_feed(self, topic: str, handler: MessageHandler) -> None:
        """Subscribe to ``topic`` in every session and hand its messages to ``handler``.

        For data the gateway *takes in* (the signed drug library, gateway/mqtt/library_feed.py).
        Nothing subscribed here may ever lead to a command to a pump (design.md §2 inv. 1).
        Call before :meth:`run`; the handler runs on the event loop and must not block.
        """
        self.inbound.add_feed(topic, handler)

    # ---- lifecycle ------------------------------------------------------------------------------

    async def wait_online(self) -> None:
        """Return once a session's birth ("online" status) was acknowledged by the broker."""
        await self._online.wait()

    def stop(self) -> None:
        """Ask :meth:`run` to publish "offline", disconnect cleanly and return."""
        self._stop.set()

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff; returns after :meth:`stop`. Owns its tasks."""
        try:
            await Reconnector(self.config, self.stats, self._stop).run(self._connect, self._serve)
        finally:
            self.inbound.close()

    async def _connect(self, session: str) -> MqttConnection:
        t = self.topics
        settings = connect_settings(self.config, default_client_id=f"pumpgw-{t.site}-{t.gateway}")
        # since=None: the time of death is not known when the will is written (StatusPayload).
        will = Will(t.status, self.producer.status("offline", session=session, since=None, cause="will"))
        return await MqttConnection.open(
            settings, will=will, subscriptions=self.inbound.subscriptions, on_message=self.inbound.on_message
        )

    async def _serve(self, conn: MqttConnection, session: str) -> None:
        await GatewaySession(
            conn,
            session,
            config=self.config,
            producer=self.producer,
            retained=self.retained,
            senders=self.senders,
            stats=self.stats,
            stop=self._stop,
            online=self._online,
        ).run()

    def _rebirth(self) -> None:
        self.retained.all_due(first=self.topics.status)
