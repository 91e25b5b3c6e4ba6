"""Technical alerts of the gateway itself: outbox budget reached, messages quarantined or
expired, a drug library refused.

Components raise them synchronously from wherever they notice the condition (often inside
an outbox transaction); the alert is logged at ERROR at once -- the journal is the record
that never depends on a network -- and queued for the MQTT ``.../alerts`` topic, which a
supervised task publishes through the durable outbox. The queue is bounded: should a storm
of alerts exceed it, the overflow is counted and logged, never silent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from gateway.log import get_logger

log = get_logger("pumpgw.alerts")


class AlertSink(Protocol):
    async def enqueue_alert(self, alert: str, details: Mapping[str, object], *, occurred_at: datetime) -> None: ...


class GatewayAlerts:
    """``publish=False`` (MQTT disabled): alerts are logged only. Nothing would ever drain a
    queue then, and after ``max_queued`` alerts every further one cost an extra ERROR."""

    def __init__(self, *, max_queued: int = 1000, publish: bool = True, recent: int = 20) -> None:
        self._queue: deque[tuple[str, dict[str, object], datetime]] = deque()
        self._max = max_queued
        self._wake = asyncio.Event()
        self.publish = publish
        self.raised = 0
        self.overflow = 0
        # the last alerts for the status page: name, time and technical details only
        # (alert details never carry patient data: see the raisers, e.g. the outbox)
        self.recent: deque[dict[str, object]] = deque(maxlen=recent)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def raise_alert(self, name: str, details: Mapping[str, object]) -> None:
        self.raised += 1
        self.recent.append(
            {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "alert": name,
                "details": {k: str(v) for k, v in details.items()},
            }
        )
        log.error("gateway alert", alert=name, **{k: str(v) for k, v in details.items()})
        if not self.publish:
            return  # the journal is the record; no MQTT to publish to
        if len(self._queue) >= self._max:
            self.overflow += 1
            log.error("gateway alert queue full: alert logged only", alert=name, overflow=self.overflow)
            return
        self._queue.append((name, dict(details), datetime.now(UTC)))
        self._wake.set()

    async def forward(self, sink: AlertSink) -> None:
        """Supervised task: hand queued alerts to MQTT (committed to the outbox there)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                name, details, at = self._queue[0]
                await sink.enqueue_alert(name, details, occurred_at=at)
                self._queue.popleft()
