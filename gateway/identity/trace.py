"""The pipeline's traceability component: identities in, typed events out (plus durable records).

The pipeline calls :meth:`Traceability.observe` with every identify result and every
snapshot, routes the returned :class:`~gateway.events.model.PumpEvent` objects through its
normal event path (MQTT events, the CMMS destination), and then calls
:meth:`Traceability.commit` -- messages first, record second (see registry.py).

Logging: ``device_swapped`` is ERROR when it contradicts the slot's asset tag (the
hospital's register now names the wrong device), WARNING otherwise; ``firmware_changed``
and ``identity_unreadable`` WARNING; ``pump_library_changed`` and ``device_returned`` INFO.
Serial numbers are device identifiers, not patient data (design §2 inv. 7).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from drivers.model import PumpIdentity, PumpSnapshot
from gateway.events.model import EventKind, PumpEvent
from gateway.identity.model import SlotRecord
from gateway.identity.registry import IdentityRegistry, Observation
from gateway.log import get_logger

_MESSAGES = {
    EventKind.DEVICE_SWAPPED: "another device in this slot (swap)",
    EventKind.FIRMWARE_CHANGED: "pump firmware changed",
    EventKind.PUMP_LIBRARY_CHANGED: "pump drug-library version changed",
    EventKind.DEVICE_RETURNED: "a device seen before is back",
    EventKind.IDENTITY_UNREADABLE: "pump identity could not be read",
}


class Traceability:
    def __init__(self, registry: IdentityRegistry, *, on_record: Callable[[SlotRecord], None] | None = None) -> None:
        self.registry = registry
        self.on_record = on_record
        self.log = get_logger("pumpgw.identity")

    def observe_identify(self, pump_id: str, identity: PumpIdentity) -> tuple[list[PumpEvent], Observation]:
        obs = self.registry.observe(pump_id, identity, datetime.now(UTC), complete=True)
        return self._events(obs, None), obs

    def observe_snapshot(self, snapshot: PumpSnapshot) -> tuple[list[PumpEvent], Observation]:
        obs = self.registry.observe(snapshot.pump_id, snapshot.identity, snapshot.received_at, complete=False)
        return self._events(obs, snapshot), obs

    def observe_unreadable(self, pump_id: str, reason: str) -> tuple[list[PumpEvent], Observation]:
        obs = self.registry.unreadable(pump_id, datetime.now(UTC), reason)
        return self._events(obs, None), obs

    def commit(self, obs: Observation) -> None:
        before = self.registry.slots.get(obs.pump_id)
        self.registry.apply(obs)
        after = self.registry.slots.get(obs.pump_id)
        if obs.comparison.new_device and obs.previous is None and after is not None:
            self.log.info(
                "pump registered",
                pump=obs.pump_id,
                manufacturer=after.manufacturer,
                model=after.model,
                serial=after.serial_number,
                firmware=after.firmware,
                asset_tag=after.asset_tag,
            )
        if after is not None and self.on_record is not None and _inventory_view(before) != _inventory_view(after):
            self.on_record(after)
        self.registry.flush()

    def _events(self, obs: Observation, snapshot: PumpSnapshot | None) -> list[PumpEvent]:
        events = []
        previous = obs.previous.identity() if obs.previous is not None else None
        for change in obs.changes:
            level = {"error": self.log.error, "warning": self.log.warning}.get(change.severity, self.log.info)
            level(_MESSAGES[change.kind], pump=obs.pump_id, kind=change.kind.value, **change.detail)
            events.append(
                PumpEvent(
                    change.kind,
                    obs.pump_id,
                    obs.at,
                    snapshot=snapshot,
                    previous_identity=previous,
                    detail=dict(change.detail),
                )
            )
        return events


def _inventory_view(record: SlotRecord | None) -> tuple | None:
    """What the published inventory shows, minus last_seen (refreshed with the periodic state)."""
    if record is None:
        return None
    return (
        record.manufacturer,
        record.model,
        record.serial_number,
        record.firmware,
        record.drug_library_version,
        record.udi,
        record.asset_tag,
        record.first_seen,
        record.unreadable_since,
    )
