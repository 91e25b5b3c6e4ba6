"""From snapshots to queued messages: events, verdicts, HL7 encoding, routing to lanes.

The poller calls this sink for every snapshot and communication change. For each pump it
keeps an event tracker (snapshot diff -> typed events), checks every reported program
against the drug library, and enqueues

* PCD-01 observations once per reporting interval per pump,
* PCD-10 infusion events as they happen,
* PCD-04 alarms as they happen, on a separate *alarm lane* of each destination that takes
  them, so an alarm never waits behind a backlog of observations (design.md §2 inv. 4),

and hands the same state/events to the MQTT publisher when one is configured.

A message counts as produced only once ``Outbox.enqueue`` returned (it is committed).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from drivers.model import PumpIdentity, PumpSnapshot
from gateway.config.model import GatewayConfig, MllpDestination, PumpConfig
from gateway.druglib import LibraryHolder, VerdictSet, evaluate, program_from_channel, verdict_observations
from gateway.events.errors import EventError
from gateway.events.model import PumpEvent
from gateway.events.tracker import PumpEventTracker
from gateway.identity.registry import Observation
from gateway.identity.trace import Traceability
from gateway.hl7 import PCD10_EVENTS, ControlIdGenerator, EncodeContext, PumpInfo, encode_pcd01, encode_pcd04, encode_pcd10
from gateway.log import get_logger
from gateway.outbox import Outbox

ALARM_LANE_SUFFIX = ".alarms"
SINKS = frozenset({"hl7", "mqtt"})
MAX_ROUTING_ATTEMPTS = 20  # ~ one per poll: a transient disk or lock problem outlasts this
MAX_UNROUTED = 1000  # per pump: bounded memory (design.md §2 inv. 8)


def lane_for(destination: MllpDestination, kind: str) -> str:
    return destination.name + (ALARM_LANE_SUFFIX if kind == "pcd04" else "")


def lanes(destination: MllpDestination) -> list[str]:
    """The outbox lanes (one sender task each) a destination needs."""
    names = [destination.name] if set(destination.messages) - {"pcd04"} else []
    if "pcd04" in destination.messages:
        names.append(destination.name + ALARM_LANE_SUFFIX)
    return names


class LivePublisher(Protocol):
    """What the pipeline needs from the MQTT side (absent when MQTT is disabled).

    State is coalesced in memory (only the newest matters); events and alarms are committed
    to the outbox by ``enqueue_event`` and published from there.
    """

    def update_state(self, snapshot: PumpSnapshot, *, verdicts: list[dict] | None = None) -> None: ...
    async def enqueue_event(self, event: PumpEvent) -> None: ...


@dataclass
class PumpRuntime:
    config: PumpConfig
    tracker: PumpEventTracker
    last_pcd01: float = float("-inf")
    last_snapshot: PumpSnapshot | None = None
    verdicts: dict[str, VerdictSet] = field(default_factory=dict)  # by channel id, of last_snapshot
    # (event, sinks still owed, attempts): events whose routing failed, retried first next time
    unrouted: deque[tuple[PumpEvent, frozenset[str], int]] = field(default_factory=deque)
    counters: dict[str, int] = field(default_factory=lambda: {"snapshots": 0, "events": 0, "messages": 0})


class Pipeline:
    def __init__(
        self,
        config: GatewayConfig,
        outbox: Outbox,
        *,
        control_ids: ControlIdGenerator,
        pcd01_interval_s: float = 60.0,
        processing_id: str = "P",
        library: LibraryHolder | None = None,
        live: LivePublisher | None = None,
        trace: Traceability | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.control_ids = control_ids
        self.pcd01_interval_s = pcd01_interval_s
        self.processing_id = processing_id
        self.library = library
        self.live = live
        self.trace = trace  # traceability (gateway/identity): durable identity, swap/firmware events
        self.log = get_logger("pumpgw.pipeline")
        self.pumps = {p.id: PumpRuntime(p, PumpEventTracker(p.id)) for p in config.pumps}
        self._routes: dict[str, list[MllpDestination]] = {
            kind: [d for d in config.destinations if kind in d.messages] for kind in ("pcd01", "pcd04", "pcd10", "dmc")
        }
        pumps = {p.id: PumpInfo(pump_id=p.id, location=p.location, care_area=p.care_area, asset_tag=p.asset_tag)
                 for p in config.pumps}
        g = config.gateway
        # One encoding context per destination: MSH-5/6 name the receiver.
        self._contexts = {
            d.name: EncodeContext(
                site=g.site, ward=g.ward, gateway_id=g.gateway_id, eui64=g.eui64, country=g.country,
                control_ids=control_ids, receiving_application=d.receiving_application,
                receiving_facility=d.receiving_facility, processing_id=processing_id, pumps=pumps,
            )
            for d in config.destinations
        }

    # -- SnapshotSink -------------------------------------------------------------------
    async def on_snapshot(self, pump_id: str, snapshot: PumpSnapshot) -> None:
        rt = self.pumps[pump_id]
        rt.counters["snapshots"] += 1
        rt.last_snapshot = snapshot
        self._check_programs(rt, snapshot)
        try:
            events = rt.tracker.on_snapshot(snapshot)
        except EventError as exc:  # e.g. a driver reported a time without UTC offset
            self.log.error("snapshot refused by the event tracker", pump=pump_id, error=str(exc))
            return
        await self._route_events(rt, events)
        if self.trace is not None:
            await self._traced(rt, lambda: self.trace.observe_snapshot(snapshot))
        now = time.monotonic()
        if now - rt.last_pcd01 >= self.pcd01_interval_s:
            rt.last_pcd01 = now
            rows = self._verdict_rows(rt)
            for dest in self._routes["pcd01"]:
                try:
                    control_id, payload = encode_pcd01(
                        snapshot, self._contexts[dest.name], pump_id=pump_id, verdicts=rows
                    )
                    await self._enqueue(rt, dest, "pcd01", control_id, payload)
                except Exception as exc:  # periodic data: the next interval brings a new one
                    self.log.error("PCD-01 not produced", pump=pump_id, destination=dest.name,
                                   error=str(exc), error_type=type(exc).__name__)
        if self.live is not None:
            self.live.update_state(
                snapshot, verdicts=[{"channel": cid, **vs.to_dict()} for cid, vs in rt.verdicts.items()]
            )

    def _check_programs(self, rt: PumpRuntime, snapshot: PumpSnapshot) -> None:
        """Check every reported program against the library in force; log verdict changes."""
        library = self.library.current if self.library is not None else None
        verdicts: dict[str, VerdictSet] = {}
        if library is not None:
            for channel in snapshot.channels:
                program = program_from_channel(
                    channel, care_area=rt.config.care_area or None,
                    pump_library_version=snapshot.identity.drug_library_version,
                )
                if program is not None:
                    verdicts[channel.channel_id] = evaluate(library, program)
        for cid, vs in verdicts.items():
            before = rt.verdicts.get(cid)
            if before is None or before.kinds != vs.kinds:
                level = self.log.warning if vs.severity.value in ("warning", "critical") else self.log.info
                level("drug-library verdict", pump=rt.config.id, channel=cid, severity=vs.severity.value,
                      verdicts=[v.text for v in vs], library_version=vs.library_version)
        rt.verdicts = verdicts

    @staticmethod
    def _verdict_rows(rt: PumpRuntime) -> dict[str, list]:
        return {cid: verdict_observations(vs) for cid, vs in rt.verdicts.items()}

    async def on_identity(self, pump_id: str, identity: PumpIdentity) -> None:
        self.log.info("pump identified", pump=pump_id, serial=identity.serial_number, firmware=identity.firmware,
                      library=identity.drug_library_version)
        if self.trace is not None:
            await self._traced(self.pumps[pump_id], lambda: self.trace.observe_identify(pump_id, identity))

    async def on_identity_unreadable(self, pump_id: str, reason: str) -> None:
        """The pump answers but its identity query failed (the poller goes on polling)."""
        if self.trace is not None:
            await self._traced(self.pumps[pump_id], lambda: self.trace.observe_unreadable(pump_id, reason))

    async def _traced(self, rt: PumpRuntime, observe: Callable[[], tuple[list[PumpEvent], Observation]]) -> None:
        """Traceability events through the normal event path, the CMMS report, then the record.

        A failure here (the database unreadable ...) is logged and never stops polling."""
        assert self.trace is not None
        try:
            events, obs = observe()
        except Exception as exc:
            self.log.error("identity not compared with the registry", pump=rt.config.id, error=str(exc),
                           error_type=type(exc).__name__)
            return
        await self._route_events(rt, events)
        if self._routes["dmc"] and (obs.changes or obs.comparison.new_device):
            await self._route_dmc(rt, obs)
        try:
            self.trace.commit(obs)
        except Exception as exc:
            self.log.error("identity record not stored", pump=rt.config.id, error=str(exc),
                           error_type=type(exc).__name__)

    async def _route_dmc(self, rt: PumpRuntime, obs: Observation) -> None:
        from gateway.hl7.dmc import encode_dmc  # only ward configs with a CMMS destination use it

        record = obs.comparison.record or obs.previous
        if record is None:
            return
        for dest in self._routes["dmc"]:
            try:
                control_id, payload = encode_dmc(record, obs.changes, self._contexts[dest.name],
                                                 ward=self.config.gateway.ward, bed=rt.config.location)
                await self._enqueue(rt, dest, "dmc", control_id, payload)
            except Exception as exc:  # a device report: logged loudly, never holds pump data back
                self.log.error("device-management report not queued", pump=rt.config.id, destination=dest.name,
                               error=str(exc), error_type=type(exc).__name__)

    async def on_comm_lost(self, pump_id: str, at: datetime, reason: str) -> None:
        rt = self.pumps[pump_id]
        await self._route_events(rt, rt.tracker.on_comm_lost(at, reason))

    async def on_comm_restored(self, pump_id: str, at: datetime) -> None:
        rt = self.pumps[pump_id]
        await self._route_events(rt, rt.tracker.on_comm_restored(at))

    # -- routing --------------------------------------------------------------------------
    async def _route_events(self, rt: PumpRuntime, events: list[PumpEvent]) -> None:
        """Route each event to HL7 and MQTT independently.

        The tracker has already moved on when routing fails (disk full, a lease file not
        writable ...): a failed event is kept, per sink, and retried before the next ones, so
        an alarm onset is never lost because its commit failed once. After MAX_ROUTING_ATTEMPTS
        it is given up with an ERROR naming pump, kind and alert instance -- never silently.
        """
        queue = rt.unrouted
        queue.extend((event, SINKS, 0) for event in events)
        blocked: set[str] = set()  # a sink that failed holds every later event too: order per sink
        for _ in range(len(queue)):
            event, owed, attempts = queue.popleft()
            failed = await self._route_event(rt, event, owed - blocked) if owed - blocked else frozenset()
            blocked |= failed
            still_owed = failed | (owed & blocked)
            if not still_owed:
                continue
            tried = attempts + (1 if failed else 0)
            if failed and (tried >= MAX_ROUTING_ATTEMPTS or len(queue) >= MAX_UNROUTED):
                self.log.error("event given up after failed routing", pump=rt.config.id, kind=event.kind.value,
                               alert_instance_id=event.alert_instance_id, sinks=sorted(failed), attempts=tried)
                continue
            queue.append((event, still_owed, tried))
        while len(queue) > MAX_UNROUTED:  # a sink failing for good: bounded, and loudly
            event, owed, tried = queue.popleft()
            self.log.error("event given up: unrouted backlog full", pump=rt.config.id, kind=event.kind.value,
                           alert_instance_id=event.alert_instance_id, sinks=sorted(owed), attempts=tried)

    async def _route_event(self, rt: PumpRuntime, event: PumpEvent, owed: frozenset[str]) -> frozenset[str]:
        """Route one event to the sinks still owed; return those that failed."""
        failed: set[str] = set()
        if "hl7" in owed:
            rt.counters["events"] += 1
            try:
                await self._route_hl7(rt, event)
            except Exception as exc:
                failed.add("hl7")
                self.log.error("event not queued for HL7; will retry", pump=rt.config.id, kind=event.kind.value,
                               alert_instance_id=event.alert_instance_id, error=str(exc),
                               error_type=type(exc).__name__)
        if "mqtt" in owed and self.live is not None:
            try:
                await self.live.enqueue_event(event)
            except Exception as exc:
                failed.add("mqtt")
                self.log.error("event not queued for MQTT; will retry", pump=rt.config.id, kind=event.kind.value,
                               alert_instance_id=event.alert_instance_id, error=str(exc),
                               error_type=type(exc).__name__)
        return frozenset(failed)

    async def _route_hl7(self, rt: PumpRuntime, event: PumpEvent) -> None:
        if event.is_alarm:
            for dest in self._routes["pcd04"]:
                control_id, payload = encode_pcd04(event, self._contexts[dest.name])
                await self._enqueue(rt, dest, "pcd04", control_id, payload)
        elif event.kind in PCD10_EVENTS:
            rows = self._verdict_rows(rt) if event.snapshot is rt.last_snapshot else None
            for dest in self._routes["pcd10"]:
                control_id, payload = encode_pcd10(event, self._contexts[dest.name], verdicts=rows)
                await self._enqueue(rt, dest, "pcd10", control_id, payload)

    async def _enqueue(self, rt: PumpRuntime, dest: MllpDestination, kind: str, control_id: str, payload: bytes) -> None:
        await self.outbox.enqueue(
            lane=lane_for(dest, kind), kind=kind, control_id=control_id, payload=payload, ttl_s=dest.ttl_s[kind]
        )
        rt.counters["messages"] += 1
