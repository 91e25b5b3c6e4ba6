"""What a poller reports to: the pipeline (snapshots, identity, communication) and metrics.

The poller knows nothing about HL7 or MQTT; these two protocols are its whole view of the
rest of the gateway, so a test can run a poller against a recording sink.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from drivers.model import PumpIdentity, PumpSnapshot


class PollMetrics(Protocol):
    """What a poller reports for ``/metrics`` (gateway.health.metrics implements it)."""

    def poll_done(self, pump: str, outcome: str) -> None: ...
    def link_reopened(self, link: str) -> None: ...


class SnapshotSink(Protocol):
    async def on_snapshot(self, pump_id: str, snapshot: PumpSnapshot) -> None: ...
    async def on_identity(self, pump_id: str, identity: PumpIdentity) -> None: ...
    async def on_identity_unreadable(self, pump_id: str, reason: str) -> None: ...
    async def on_comm_lost(self, pump_id: str, at: datetime, reason: str) -> None: ...
    async def on_comm_restored(self, pump_id: str, at: datetime) -> None: ...
