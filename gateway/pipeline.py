"""From snapshots to committed messages: events, verdicts, rendering, one commit per step.

The poller calls this sink for every snapshot and communication change. For each pump it
keeps an event tracker (snapshot diff -> typed events), checks every reported program
against the drug library, renders every lane's bytes for what happened (PCD-04 alarms on
each destination's alarm lane, PCD-10 infusion events, a PCD-01 observation once per
reporting interval, the MQTT event/alarm payloads) and commits them **together with the
pump's clinical state** in one outbox transaction (design.md §2 inv. 9, 10):

* the clinical state (:mod:`gateway.events.state_codec`) is what the tracker knows and the
  outside world was told; after a restart the tracker continues from it, so an active alarm
  keeps its onset, a running infusion is not started again, a pump reported offline is
  reported online when it answers;
* an event a lane cannot encode is dropped *for that lane* with an ERROR and a gateway alert
  and never holds back another event or alarm (re-encoding would fail the same way);
* only a storage failure is retried: the rendered messages are kept in memory and committed
  before anything newer of the same pump, with identical bytes and control ids. A process
  that dies meanwhile committed neither the messages nor the state, so the next process
  derives the same events again from the last committed state: nothing is lost, nothing
  is doubled.

A message counts as produced only once ``Outbox.commit`` returned.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from drivers.model import PumpIdentity, PumpSnapshot, Quantity
from gateway.config.model import GatewayConfig, MllpDestination, PumpConfig, SourceDevice
from gateway.druglib import LibraryHolder, VerdictSet, evaluate, program_from_channel
from gateway.errors import BadInput, RetryLater
from gateway.events.errors import EventError
from gateway.events.model import PumpEvent
from gateway.events.state_codec import STATE_VERSION, StateRowError, decode_state, encode_state
from gateway.events.tracker import PumpEventTracker
from gateway.hl7 import ControlIdGenerator, EncodeContext, PumpInfo
from gateway.hl7.context import PatientIdentity
from gateway.hl7.verdict_rows import verdict_observations
from gateway.identity.registry import Observation
from gateway.identity.trace import Traceability
from gateway.lanes import ALARM_LANE_SUFFIX, lane_for, lanes
from gateway.log import get_logger
from gateway.outbox import Outbox, OutboxFull
from gateway.outbox.model import InboundReceipt, NewMessage, PumpStateRow
from gateway.rendering import Refusal, Renderer

__all__ = ["ALARM_LANE_SUFFIX", "LivePublisher", "Pipeline", "lane_for", "lanes"]

MAX_UNCOMMITTED = 1000  # messages per pump held for a retried commit: bounded (design.md §2 inv. 8)
AlertHook = Callable[[str, dict], None]


class LivePublisher(Protocol):
    """What the pipeline needs from the MQTT side (absent when MQTT is disabled).

    State is coalesced in memory (only the newest matters); events and alarms are rendered by
    ``render_event`` and committed by the pipeline with the HL7 messages of the same event;
    ``event_committed`` then updates the live availability.
    """

    def update_state(self, snapshot: PumpSnapshot, *, verdicts: list[dict] | None = None) -> None: ...
    def render_event(self, event: PumpEvent) -> NewMessage: ...
    def event_committed(self, event: PumpEvent) -> None: ...


@dataclass(slots=True)
class Uncommitted:
    """Rendered messages whose commit failed, kept to be committed unchanged."""

    messages: list[NewMessage]
    events: list[PumpEvent]
    receipts: list[InboundReceipt] = field(default_factory=list)  # inbound messages answered for


@dataclass
class PumpRuntime:
    config: PumpConfig | SourceDevice
    tracker: PumpEventTracker
    last_pcd01: float = float("-inf")  # monotonic
    last_pcd01_at: str = ""  # wall clock (ISO), part of the durable state
    last_snapshot: PumpSnapshot | None = None
    verdicts: dict[str, VerdictSet] = field(default_factory=dict)  # by channel id, of last_snapshot
    uncommitted: deque[Uncommitted] = field(default_factory=deque)
    stored_key: str | None = None  # the state last committed (without volatile fields)
    counters: dict[str, int] = field(default_factory=lambda: {"snapshots": 0, "events": 0, "messages": 0})
    expected_weight: Quantity | None = None  # the patient record's weight (vendor-server sources)


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
        routes: dict[str, list[MllpDestination]] = {
            kind: [d for d in config.destinations if kind in d.messages] for kind in ("pcd01", "pcd04", "pcd10", "dmc")
        }
        pumps = {
            p.id: PumpInfo(pump_id=p.id, location=p.location, care_area=p.care_area, asset_tag=p.asset_tag)
            for p in config.pumps
        }
        self._pump_infos = pumps  # shared by every context: source devices admitted later join it
        # Patient context per pump, from vendor-server sources (PID/PV1): patient data, it only
        # reaches outgoing HL7 (and so the outbox), never a log above DEBUG or MQTT.
        self.patients: dict[str, PatientIdentity] = {}
        g = config.gateway
        # One encoding context per destination: MSH-5/6 name the receiver.
        contexts = {
            d.name: EncodeContext(
                site=g.site,
                ward=g.ward,
                gateway_id=g.gateway_id,
                eui64=g.eui64,
                country=g.country,
                control_ids=control_ids,
                receiving_application=d.receiving_application,
                receiving_facility=d.receiving_facility,
                processing_id=processing_id,
                pumps=pumps,
                patients=self.patients,
            )
            for d in config.destinations
        }
        self._routes, self._contexts = routes, contexts
        self.renderer = Renderer(routes, contexts, live)
        for source in config.sources:
            for device in source.devices:
                self._add_runtime(device)
        self._restore()

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
        rt = self._add_runtime(device)
        row = self.outbox.load_states().get(device.id)
        if row is not None:
            try:
                rt.tracker.restore_state(decode_state(device.id, *row))
                rt.stored_key = self._state_key(rt)
            except StateRowError as exc:
                self.log.error(
                    "stored clinical state unusable; the pump starts from unknown (baseline)",
                    pump=device.id,
                    error=str(exc),
                )
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
        return await self.on_snapshot(pump_id, snapshot, receipts=receipts)

    # -- restart ----------------------------------------------------------------------------
    def _restore(self) -> None:
        """Continue every pump from its committed clinical state; an unusable row -> unknown."""
        stored = self.outbox.load_states()
        now_wall, now_mono = time.time(), time.monotonic()
        restored = alarms = lost = 0
        for pump_id, rt in self.pumps.items():
            row = stored.get(pump_id)
            if row is None:
                continue
            try:
                state = decode_state(pump_id, *row)
            except StateRowError as exc:
                self.log.error(
                    "stored clinical state unusable; the pump starts from unknown (baseline)",
                    pump=pump_id,
                    error=str(exc),
                )
                self._alert("pump_state_refused", {"pump": pump_id, "reason": exc.reason})
                continue
            rt.tracker.restore_state(state)
            rt.stored_key = self._state_key(rt)
            last = state.extra.get("last_pcd01_at", "")
            if last:
                try:
                    age = now_wall - datetime.fromisoformat(last).timestamp()
                    rt.last_pcd01, rt.last_pcd01_at = now_mono - max(0.0, age), last
                except ValueError:
                    pass  # the next PCD-01 is simply due now
            restored, alarms, lost = restored + 1, alarms + len(state.alarms), lost + (state.lost is not None)
            self.log.debug(
                "clinical state restored",
                pump=pump_id,
                alarms=len(state.alarms),
                channels=len(state.known),
                comm_lost=state.lost is not None,
            )
        if stored:
            self.log.info("clinical state restored", pumps=restored, active_alarms=alarms, comm_lost=lost)

    def _state_key(self, rt: PumpRuntime) -> str:
        """The state as told, without the last event time (it moves with every poll and tells
        no story): when it is unchanged and nothing is owed, no row is written."""
        state = rt.tracker.export_state()
        state.extra = {"last_pcd01_at": rt.last_pcd01_at} if rt.last_pcd01_at else {}
        return encode_state(state, with_last_time=False)

    # -- SnapshotSink -------------------------------------------------------------------
    async def on_snapshot(
        self, pump_id: str, snapshot: PumpSnapshot, *, receipts: list[InboundReceipt] | None = None
    ) -> bool:
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
        committed = await self._commit(rt, messages, events, receipts or [])
        if self.trace is not None and pump_id in self._polled_ids:
            await self._traced(rt, lambda: self.trace.observe_snapshot(snapshot))
        if self.live is not None:
            self.live.update_state(
                snapshot, verdicts=[{"channel": cid, **vs.to_dict()} for cid, vs in rt.verdicts.items()]
            )
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
        await self._commit(rt, messages, events)
        try:
            self.trace.commit(obs)
        except Exception as exc:
            self.log.error(
                "identity record not stored", pump=rt.config.id, error=str(exc), error_type=type(exc).__name__
            )

    def _render_dmc(self, rt: PumpRuntime, obs: Observation) -> list[NewMessage]:
        from gateway.hl7.dmc import encode_dmc  # only ward configs with a CMMS destination use it

        record = obs.comparison.record or obs.previous
        if record is None:
            return []
        out = []
        for dest in self._routes["dmc"]:
            try:
                control_id, payload = encode_dmc(
                    record,
                    obs.changes,
                    self._contexts[dest.name],
                    ward=self.config.gateway.ward,
                    bed=rt.config.location,
                )
            except BadInput as exc:  # a device report that cannot be encoded: logged loudly, never holds pump data back
                self.log.error(
                    "device-management report not queued",
                    pump=rt.config.id,
                    destination=dest.name,
                    error=str(exc),
                    error_type=type(exc).__name__,
                )
                continue
            out.append(NewMessage(lane_for(dest, "dmc"), "dmc", control_id, payload, dest.ttl_s["dmc"]))
        return out

    async def on_comm_lost(self, pump_id: str, at: datetime, reason: str) -> None:
        rt = self.pumps[pump_id]
        events = rt.tracker.on_comm_lost(at, reason)
        await self._commit(rt, self._render_events(rt, events), events)

    async def on_comm_restored(self, pump_id: str, at: datetime) -> None:
        rt = self.pumps[pump_id]
        events = rt.tracker.on_comm_restored(at)
        await self._commit(rt, self._render_events(rt, events), events)

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

    async def _commit(
        self,
        rt: PumpRuntime,
        messages: list[NewMessage],
        events: list[PumpEvent],
        receipts: list[InboundReceipt] | None = None,
    ) -> bool:
        """Commit what is owed for this pump (earlier failures first) with its state, once.

        The state row is written when what the outside world was told changed (events, a
        PCD-01 time, a new program) -- not for every poll's volume counter.
        """
        if messages or events or receipts:
            rt.uncommitted.append(Uncommitted(messages, events, list(receipts or ())))
            self._bound(rt)
        state = rt.tracker.export_state()
        state.extra = {"last_pcd01_at": rt.last_pcd01_at} if rt.last_pcd01_at else {}
        key = encode_state(state, with_last_time=False)
        if not rt.uncommitted and key == rt.stored_key:
            return True
        pending = list(rt.uncommitted)
        batch = [m for unit in pending for m in unit.messages]
        row = PumpStateRow(rt.config.id, STATE_VERSION, encode_state(state))
        try:
            receipts = [r for unit in pending for r in unit.receipts]
            if receipts:  # inbound messages (gateway/sources) answered for by this commit
                await self.outbox.commit(batch, [row], receipts)
            else:
                await self.outbox.commit(batch, [row])
        except OutboxFull as exc:  # the outbox logged the condition once at ERROR and alerted
            self.log.debug(
                "commit refused, disk full; the same messages will be committed before newer ones",
                pump=rt.config.id,
                messages=len(batch),
                error=str(exc),
            )
            return False
        except RetryLater as exc:  # storage busy (OutboxBusy): keep the same bytes for the next attempt
            self.log.error(
                "commit failed; the same messages will be committed before newer ones",
                pump=rt.config.id,
                messages=len(batch),
                error=str(exc),
                error_type=type(exc).__name__,
            )
            return False
        for _ in pending:
            rt.uncommitted.popleft()
        rt.stored_key = key
        rt.counters["messages"] += len(batch)
        if self.live is not None:
            for unit in pending:
                for event in unit.events:
                    self.live.event_committed(event)
        return True

    def _bound(self, rt: PumpRuntime) -> None:
        """A store failing for good: keep at most MAX_UNCOMMITTED messages, dropping loudly."""
        while sum(len(u.messages) for u in rt.uncommitted) > MAX_UNCOMMITTED and len(rt.uncommitted) > 1:
            unit = rt.uncommitted.popleft()
            details = {
                "pump": rt.config.id,
                "messages": len(unit.messages),
                "events": ",".join(e.kind.value for e in unit.events),
                "alert_instance_ids": ",".join(e.alert_instance_id or "" for e in unit.events if e.is_alarm),
            }
            self.log.error("messages given up: the outbox has refused every commit", **details)
            self._alert("messages_not_committed", details)

    def _alert(self, name: str, details: Mapping[str, object]) -> None:
        if self.on_alert is None:
            return
        try:
            self.on_alert(name, dict(details))
        except Exception:  # noqa: BLE001 - an alert hook must never stop the pipeline
            self.log.exception("alert hook failed", alert=name)
