"""What the gateway tells MQTT, rendered without waiting on the broker.

Two delivery classes (docs/mqtt.md, "Delivery semantics"):

* **Latest state** (status, inventory, per-pump availability and state) goes into
  :class:`~gateway.mqtt.retained.RetainedTopics`, coalesced; the session publishes it retained.
* **Events, alarms and gateway alerts** become outbox messages (topic envelope, lane, TTL).
  :meth:`MqttProducer.render_event` renders one without I/O for the pipeline, which commits
  it in the same transaction as the event's HL7 messages and the pump's clinical state
  (design.md §2 inv. 10); :meth:`enqueue_event` and :meth:`enqueue_alert` commit one on
  their own. The lane senders (:mod:`gateway.mqtt.sender`) take them from there. Alarms have
  their own lane so they never wait behind events (design.md §2 inv. 4).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drivers.model import PumpIdentity, PumpSnapshot
from gateway.config.model import MqttConfig
from gateway.druglib.verdicts import VerdictSet
from gateway.events.model import EventKind, PumpEvent
from gateway.lanes import MQTT_ALARMS, MQTT_EVENTS
from gateway.mqtt.envelope import encode_envelope
from gateway.mqtt.gateway_payloads import gateway_alert_payload, inventory_payload, status_payload
from gateway.mqtt.models import Availability, GatewayState, StatusCause
from gateway.mqtt.payloads import (
    alarm_payload,
    availability_payload,
    event_message_id,
    event_payload,
    state_payload,
)
from gateway.mqtt.retained import RetainedTopics
from gateway.mqtt.topics import Topics
from gateway.outbox import Outbox
from gateway.outbox.model import NewMessage


@dataclass(frozen=True, slots=True)
class MqttLanes:
    """Outbox lane names of the MQTT destination (one sender each)."""

    events: str = MQTT_EVENTS
    alarms: str = MQTT_ALARMS


DEFAULT_LANES = MqttLanes()


def utcnow() -> datetime:
    return datetime.now(UTC)


class MqttProducer:
    def __init__(
        self,
        config: MqttConfig,
        topics: Topics,
        outbox: Outbox,
        retained: RetainedTopics,
        *,
        version: str,
        config_hash: str,
        lanes: MqttLanes = DEFAULT_LANES,
        ward: str | None = None,
        beds: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.topics = topics
        self.lanes = lanes
        self.ward = ward
        self._outbox = outbox
        self._retained = retained
        self._version = version
        self._config_hash = config_hash
        self._availability: dict[str, Availability] = {}
        self._identities: dict[str, PumpIdentity | None] = {}
        self._last_seen: dict[str, datetime] = {}
        self._library_version: str | None = None
        # per pump: what the identity registry knows (asset tag, first seen ...) and the bed
        self._slots: dict[str, dict[str, Any]] = {p: {"bed": b} for p, b in (beds or {}).items() if b}

    # ---- latest state ----------------------------------------------------------------------

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
        self._retained.set(
            self.topics.availability(pump_id),
            availability_payload(pump_id, availability, since=since or utcnow()),
            expires=availability != "offline",
        )

    def update_state(
        self,
        snapshot: PumpSnapshot,
        *,
        verdicts: Mapping[str, VerdictSet] | None = None,
        patient: Mapping[str, str] | None = None,
    ) -> None:
        """Replace the pump's pending state (coalesced) and mark it online.

        ``verdicts``: the drug-library verdicts of its running programs, by channel id."""
        pump_id = snapshot.pump_id
        payload = state_payload(
            snapshot, verdicts=verdicts, include_patient_ids=self.config.include_patient_ids, patient=patient
        )
        self._retained.set(self.topics.state(pump_id), payload)
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

    def set_retained(self, topic: str, payload: bytes) -> None:
        """Publish ``payload`` retained on ``topic`` now and again after every reconnect."""
        self._retained.set(topic, payload)

    def status(self, state: GatewayState, *, session: str, since: datetime | None, cause: StatusCause) -> bytes:
        """The gateway's status payload (birth, heartbeat, stop, or the Last Will)."""
        return status_payload(
            state=state,
            site=self.topics.site,
            gateway=self.topics.gateway,
            version=self._version,
            config_hash=self._config_hash,
            session=session,
            since=since,
            ward=self.ward,
            heartbeat_interval_s=self.config.heartbeat_interval_s,
            heartbeat_at=utcnow() if state == "online" else None,
            cause=cause,
        )

    def offline_at_stop(self, *, session: str, at: datetime) -> dict[str, bytes]:
        """What a clean stop says itself, since the broker discards the Last Will on DISCONNECT:
        every pump goes offline with the gateway, then the gateway (retained, no expiry)."""
        final = {self.topics.availability(p): availability_payload(p, "offline", since=at) for p in self._availability}
        final[self.topics.status] = self.status("offline", session=session, since=at, cause="stop")
        for topic, payload in final.items():
            self._retained.set(topic, payload, due=False)
        return final

    def _mark_inventory(self) -> None:
        self._retained.set(
            self.topics.inventory,
            inventory_payload(
                site=self.topics.site,
                gateway=self.topics.gateway,
                identities=self._identities,
                last_seen=self._last_seen,
                generated_at=utcnow(),
                central_library_version=self._library_version,
                ward=self.ward,
                slots=self._slots,
            ),
        )

    # ---- durable events, alarms and alerts ---------------------------------------------------

    def render_event(self, event: PumpEvent) -> NewMessage:
        """The event's durable MQTT message (topic envelope, lane, TTL), rendered without I/O.

        The pipeline commits it with the event's HL7 messages, then calls :meth:`event_committed`.
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
        """Commit an event or alarm to the outbox on its own; it is published from there."""
        await self._outbox.commit([self.render_event(event)])
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
        await self._outbox.commit(
            [
                NewMessage(
                    lane=self.lanes.events,
                    kind="mqtt-alert",
                    control_id=message_id,
                    payload=encode_envelope(self.topics.alerts, body),
                    ttl_s=self.config.event_ttl_s,
                )
            ]
        )
