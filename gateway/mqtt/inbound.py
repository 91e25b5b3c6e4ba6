"""What the gateway takes in over MQTT: rebirth requests and registered feeds.

Nothing taken in here may ever lead to a command to a pump (design.md §2 inv. 1). A feed is
data the gateway consumes (the signed drug library, :mod:`gateway.mqtt.library_feed`); a
rebirth request only makes every retained topic due again. Handlers run on the event loop
and must not block.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import structlog

from gateway.config.model import MqttConfig
from gateway.mqtt.connection import MessageHandler
from gateway.mqtt.stats import PublisherStats
from gateway.mqtt.topics import Topics

log = structlog.get_logger("pumpgw.mqtt")

# A rebirth request carries no data we use; anything longer than this is not one (refused
# before any parsing, counted and logged).
MAX_REBIRTH_PAYLOAD_BYTES = 1024


class InboundRouter:
    def __init__(
        self, config: MqttConfig, topics: Topics, stats: PublisherStats, *, on_rebirth: Callable[[], None]
    ) -> None:
        self.config = config
        self.topics = topics
        self.stats = stats
        self._on_rebirth = on_rebirth
        self._feeds: dict[str, MessageHandler] = {}
        self._last_rebirth = -math.inf
        self._rebirth_timer: asyncio.TimerHandle | None = None

    def add_feed(self, topic: str, handler: MessageHandler) -> None:
        self._feeds[topic] = handler

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """Every session subscribes to these."""
        return (self.topics.rebirth, self.topics.rebirth_all, *self._feeds)

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
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

    def close(self) -> None:
        """Drop a coalesced rebirth still waiting (the publisher stopped)."""
        if self._rebirth_timer is not None:
            self._rebirth_timer.cancel()
            self._rebirth_timer = None

    def _rebirth(self, topic: str) -> None:
        self._rebirth_timer = None
        self._last_rebirth = time.monotonic()
        self.stats.rebirths += 1
        log.info("mqtt.rebirth_requested", topic=topic)
        self._on_rebirth()
