"""From snapshots to committed messages: events, verdicts, rendering, one commit per step.

The poller calls this sink for every snapshot and communication change (vendor-server sources
through :meth:`Pipeline.on_inbound`). For each pump it keeps an event tracker (snapshot diff ->
typed events), checks every reported program against the drug library, renders every lane's
bytes for what happened (:mod:`gateway.rendering`: PCD-04 alarms on each destination's alarm
lane, PCD-10 infusion events, a PCD-01 observation once per reporting interval, the MQTT
event/alarm payloads) and commits them **together with the pump's clinical state** in one
outbox transaction (:mod:`gateway.pump_state`; design.md §2 inv. 9, 10):

* after a restart the tracker continues from the committed state, so an active alarm keeps
  its onset, a running infusion is not started again, a pump reported offline is reported
  online when it answers;
* an event a lane cannot encode is dropped *for that lane* with an ERROR and a gateway alert
  and never holds back another event or alarm (re-encoding would fail the same way);
* only a storage failure is retried, with identical bytes and control ids. A process that
  dies meanwhile committed neither the messages nor the state, so the next process derives
  the same events again from the last committed state: nothing is lost, nothing is doubled.

A message counts as produced only once ``Outbox.commit`` returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Literal, Protocol

from drivers.model import PumpIdentity, PumpSnapshot, Quantity
from gateway.config.model import GatewayConfig, SourceDevice
from gateway.druglib import LibraryHolder, VerdictSet, evaluate, program_from_channel
from gateway.events.errors import EventError
from gateway.events.model import PumpEvent
from gateway.events.tracker import PumpEventTracker
from gateway.hl7 import ControlIdGenerator, PumpInfo
from gateway.hl7.context import PatientIdentity
from gateway.hl7.verdict_rows import verdict_observations
from gateway.identity.registry import Observation
from gateway.identity.trace import Traceability
from gateway.lanes import ALARM_LANE_SUFFIX, lane_for, lanes
from gateway.log import get_logger
from gateway.outbox import Outbox
from gateway.outbox.model import InboundReceipt, NewMessage
from gateway.pump_state import PumpRuntime, StateCommitter
from gateway.rendering import Refusal, Renderer, encode_contexts, routes_of

__all__ = ["ALARM_LANE_SUFFIX", "LivePublisher", "Pipeline", "lane_for", "lanes"]

AlertHook = Callable[[str, dict], None]


class LivePublisher(Protocol):
    """What the pipeline needs from the MQTT side (absent when MQTT is disabled).

    State is coalesced in memory (only the newest matters); events and alarms are rendered by
    ``render_event`` and committed by the pipeline with the HL7 messages of the same event;
    ``event_committed`` then updates the live availability.
    """

    def update_state(self, snapshot: PumpSnapshot, *, verdicts: Mapping[str, VerdictSet] | None = None) -> None: ...
    def render_event(self, event: PumpEvent) -> NewMessage: ...
    def event_committed(self, event: PumpEvent) -> None: ...


class Pipeline:
    def __init__(
        self,
        config: GatewayConfig,
        outbox: Outbox,
        *,
        control_ids: ControlIdGenerator,
        pcd01_interval_s: float = 60.0,
        processing_id: Literal["P", "D"] = "P",
        library: LibraryHolder | None = None,
        live: LivePublisher | None = None,
        on_alert: AlertHook | None = None,
        trace: Traceability | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.control_ids = control_ids
        self.pcd01_interval_s = pcd01_interval_s
        self.processing_id = processing_id
        self.library = library
        self.live = live
        self.on_alert = on_alert
        self.trace = trace  # traceability (gateway/identity): durable identity, swap/firmware events
        self.log = get_logger("pumpgw.pipeline")
        self.pumps = {p.id: PumpRuntime(p, PumpEventTracker(p.id)) for p in config.pumps}
        self._polled_ids = frozenset(self.pumps)  # traceability's registry knows the configured slots
        pumps = {
            p.id: PumpInfo(pump_id=p.id, location=p.location, care_area=p.care_area, asset_tag=p.asset_tag)
            for p in config.pumps
        }
        self._pump_infos = pumps  # shared by every context: source devices admitted later join it
        # Patient context per pump, from vendor-server sources (PID/PV1): patient data, it only
        # reaches outgoing HL7 (and so the outbox), never a log above DEBUG or MQTT.
        self.patients: dict[str, PatientIdentity] = {}
        contexts = encode_contexts(config, control_ids, processing_id, pumps=pumps, patients=self.patients)
        self._routes = routes_of(config)
        self.renderer = Renderer(self._routes, contexts, live)
        for source in config.sources:
            for device in source.devices:
                self._add_runtime(device)
        self.committer = StateCommitter(outbox, log=self.log, alert=self._alert, live=live)
        self.committer.restore(self.pumps)

    def _add_runtime(self, device: SourceDevice) -> PumpRuntime:
        rt = PumpRuntime(device, PumpEventTracker(device.id))
        self.pumps[device.id] = rt
        self._pump_infos[device.id] = PumpInfo(
            pump_id=device.id, location=device.location, care_area=device.care_area, asset_tag=device.asset_tag
        )
        return rt

    def admit(self, device: SourceDevice) -> None:
        """A device a source admits by rule (``admit = "any"``): a pump from now on, continuing
        from its committed clinical state if it was admitted before a restart."""
        if device.id in self.pumps:
            return
        self.committer.restore_admitted(self._add_runtime(device))
        if self.live is not None and hasattr(self.live, "register_pumps"):
            self.live.register_pumps([device.id])

    async def on_inbound(
        self,
        pump_id: str,
        snapshot: PumpSnapshot,
        *,
        receipts: list[InboundReceipt],
        expected_weight: Quantity | None,
        patient: PatientIdentity | None,
    ) -> bool:
        """A snapshot a vendor server reported: the polled path, plus the patient context and the
        dedup records committed with what it caused. True once everything owed is committed."""
        rt = self.pumps[pump_id]
        rt.expected_weight = expected_weight
        if patient is not None:
            self.patients[pump_id] = patient
        else:
            self.patients.pop(pump_id, None)
        return await self._process(pump_id, snapshot, receipts=receipts)

    # -- SnapshotSink -------------------------------------------------------------------
    async def on_snapshot(self, pump_id: str, snapshot: PumpSnapshot) -> None:
        await self._process(pump_id, snapshot)

    async def _process(
        self, pump_id: str, snapshot: PumpSnapshot, *, receipts: list[InboundReceipt] | None = None
    ) -> bool:
        """Events, verdicts, messages and state of one snapshot; True once all that is owed is committed."""
        rt = self.pumps[pump_id]
        rt.counters["snapshots"] += 1
        rt.last_snapshot = snapshot
        self._check_programs(rt, snapshot)
        try:
            events = rt.tracker.on_snapshot(snapshot)
        except EventError as exc:  # e.g. a driver reported a time without UTC offset
            self.log.error("snapshot refused by the event tracker", pump=pump_id, error=str(exc))
            return False
        messages = self._render_events(rt, events)
        now = time.monotonic()
        if now - rt.last_pcd01 >= self.pcd01_interval_s:
            rt.last_pcd01 = now
            rt.last_pcd01_at = datetime.now(UTC).isoformat()
            pcd01, refused = self.renderer.pcd01(
                snapshot, pump_id=pump_id, identity=rt.tracker.identity, verdicts=self._verdict_rows(rt)
            )
            self._report_refusals(rt, None, refused)
            messages.extend(pcd01)
        committed = await self.committer.commit(rt, messages, events, receipts or [])
        if self.trace is not None and pump_id in self._polled_ids:
            await self._traced(rt, partial(self.trace.observe_snapshot, snapshot))
        if self.live is not None:
            self.live.update_state(snapshot, verdicts=rt.verdicts)
        return committed

    def _check_programs(self, rt: PumpRuntime, snapshot: PumpSnapshot) -> None:
        """Check every reported program against the library in force; log verdict changes."""
        library = self.library.current if self.library is not None else None
        verdicts: dict[str, VerdictSet] = {}
        if library is not None:
            for channel in snapshot.channels:
                program = program_from_channel(
                    channel,
                    care_area=rt.config.care_area or None,
                    pump_library_version=snapshot.identity.drug_library_version,
                    expected_weight=rt.expected_weight,
                )
                if program is not None:
                    verdicts[channel.channel_id] = evaluate(library, program)
        for cid, vs in verdicts.items():
            before = rt.verdicts.get(cid)
            if before is None or before.kinds != vs.kinds:
                level = self.log.warning if vs.severity.value in ("warning", "critical") else self.log.info
                level(
                    "drug-library verdict",
                    pump=rt.config.id,
                    channel=cid,
                    severity=vs.severity.value,
                    verdicts=[v.text for v in vs],
                    library_version=vs.library_version,
                )
        rt.verdicts = verdicts

    @staticmethod
    def _verdict_rows(rt: PumpRuntime) -> dict[str, list]:
        return {cid: verdict_observations(vs) for cid, vs in rt.verdicts.items()}

    async def on_identity(self, pump_id: str, identity: PumpIdentity) -> None:
        self.log.info(
            "pump identified",
            pump=pump_id,
            serial=identity.serial_number,
            firmware=identity.firmware,
            library=identity.drug_library_version,
        )
        if self.trace is not None:
            await self._traced(self.pumps[pump_id], partial(self.trace.observe_identify, pump_id, identity))

    async def on_identity_unreadable(self, pump_id: str, reason: str) -> None:
        """The pump answers but its identity query failed (the poller goes on polling)."""
        if self.trace is not None:
            await self._traced(self.pumps[pump_id], partial(self.trace.observe_unreadable, pump_id, reason))

    async def _traced(self, rt: PumpRuntime, observe: Callable[[], tuple[list[PumpEvent], Observation]]) -> None:
        """Traceability events through the normal event path, the CMMS report, then the record.

        A failure here (the database unreadable ...) is logged and never stops polling."""
        assert self.trace is not None
        try:
            events, obs = observe()
        except Exception as exc:
            self.log.error(
                "identity not compared with the registry",
                pump=rt.config.id,
                error=str(exc),
                error_type=type(exc).__name__,
            )
            return
        messages = self._render_events(rt, events)
        if self._routes["dmc"] and (obs.changes or obs.comparison.new_device):
            messages.extend(self._render_dmc(rt, obs))
        await self.committer.commit(rt, messages, events)
        try:
            self.trace.commit(obs)
        except Exception as exc:
            self.log.error(
                "identity record not stored", pump=rt.config.id, error=str(exc), error_type=type(exc).__name__
            )

    def _render_dmc(self, rt: PumpRuntime, obs: Observation) -> list[NewMessage]:
        record = obs.comparison.record or obs.previous
        if record is None:
            return []
        out, refused = self.renderer.dmc(record, obs.changes, ward=self.config.gateway.ward, bed=rt.config.location)
        for r in refused:  # a device report: logged loudly, never holds pump data back
            self.log.error(
                "device-management report not queued",
                pump=rt.config.id,
                destination=r.lane,
                error=str(r.error),
                error_type=type(r.error).__name__,
            )
        return out

    async def on_comm_lost(self, pump_id: str, at: datetime, reason: str) -> None:
        rt = self.pumps[pump_id]
        events = rt.tracker.on_comm_lost(at, reason)
        await self.committer.commit(rt, self._render_events(rt, events), events)

    async def on_comm_restored(self, pump_id: str, at: datetime) -> None:
        rt = self.pumps[pump_id]
        events = rt.tracker.on_comm_restored(at)
        await self.committer.commit(rt, self._render_events(rt, events), events)

    # -- rendering and the commit ----------------------------------------------------------
    def _render_events(self, rt: PumpRuntime, events: list[PumpEvent]) -> list[NewMessage]:
        messages: list[NewMessage] = []
        for event in events:
            rt.counters["events"] += 1
            verdicts = self._verdict_rows(rt) if event.snapshot is rt.last_snapshot else None
            identity = rt.tracker.identity
            if event.detail.get("reason") == "device_replaced" and event.previous_identity is not None:
                identity = event.previous_identity  # closing what the old device was doing
                verdicts = None
            rendered, refused = self.renderer.event(event, identity=identity, verdicts=verdicts)
            self._report_refusals(rt, event, refused)
            messages.extend(rendered)
        return messages

    def _report_refusals(self, rt: PumpRuntime, event: PumpEvent | None, refused: list[Refusal]) -> None:
        for r in refused:
            details = {
                "pump": rt.config.id,
                "lane": r.lane,
                "kind": r.kind,
                "event_kind": event.kind.value if event is not None else "pcd01",
                "alert_instance_id": (event.alert_instance_id if event is not None else None) or "",
                "error_type": type(r.error).__name__,
                "error": str(r.error),
            }
            self.log.error("message not produced: cannot be encoded (dropped for this lane)", **details)
            self._alert("message_not_encoded", details)

    def _alert(self, name: str, details: Mapping[str, object]) -> None:
        if self.on_alert is None:
            return
        try:
            self.on_alert(name, dict(details))
        except Exception:  # noqa: BLE001 - an alert hook must never stop the pipeline
            self.log.exception("alert hook failed", alert=name)
