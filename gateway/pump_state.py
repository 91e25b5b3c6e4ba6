"""A pump's durable record: what it still owes the outbox, and the clinical state it committed.

The pipeline (gateway/pipeline.py) renders; this module commits. What the outside world was
told about a pump -- its clinical state (:mod:`gateway.events.state_codec`) -- is committed in
the same outbox transaction as the messages that told it (design.md §2 inv. 9, 10):

* a storage failure keeps the rendered messages in memory (:class:`Uncommitted`) and commits
  them before anything newer of the same pump, with identical bytes and control ids; a store
  failing for good keeps at most ``MAX_UNCOMMITTED`` messages per pump, dropping loudly;
* the state row is written when what was told changed (events, a PCD-01 time, a new
  program), not for every poll's volume counter;
* at start-up every pump continues from its committed state; an unusable row makes that pump
  start from unknown (a baseline), with an ERROR and an alert.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from drivers.model import PumpSnapshot, Quantity
from gateway.config.model import PumpConfig, SourceDevice
from gateway.druglib import VerdictSet
from gateway.errors import RetryLater
from gateway.events.model import PumpEvent
from gateway.events.state_codec import STATE_VERSION, StateRowError, TrackerState, decode_state, encode_state
from gateway.events.tracker import PumpEventTracker
from gateway.outbox import Outbox, OutboxFull
from gateway.outbox.model import InboundReceipt, NewMessage, PumpStateRow

if TYPE_CHECKING:
    from structlog.stdlib import BoundLogger

MAX_UNCOMMITTED = 1000  # messages per pump held for a retried commit: bounded (design.md §2 inv. 8)


class CommittedListener(Protocol):
    """The live (MQTT) side: told once an event is durable, to update availability."""

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


def _told(rt: PumpRuntime) -> TrackerState:
    """The state as told: the tracker's, plus when the last PCD-01 went out."""
    state = rt.tracker.export_state()
    state.extra = {"last_pcd01_at": rt.last_pcd01_at} if rt.last_pcd01_at else {}
    return state


def state_key(rt: PumpRuntime) -> str:
    """The state as told, without the last event time (it moves with every poll and tells
    no story): when it is unchanged and nothing is owed, no row is written."""
    return encode_state(_told(rt), with_last_time=False)


class StateCommitter:
    """Commits what a pump owes together with its state; restores every pump at start-up."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        log: BoundLogger,
        alert: Callable[[str, Mapping[str, object]], None],
        live: CommittedListener | None = None,
    ) -> None:
        self.outbox, self.log, self._alert, self.live = outbox, log, alert, live

    def restore(self, pumps: Mapping[str, PumpRuntime]) -> None:
        """Continue every pump from its committed clinical state; an unusable row -> unknown."""
        stored = self.outbox.load_states()
        now_wall, now_mono = time.time(), time.monotonic()
        restored = alarms = lost = 0
        for pump_id, rt in pumps.items():
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
            rt.stored_key = state_key(rt)
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

    def restore_admitted(self, rt: PumpRuntime) -> None:
        """A device a source admitted at run time continues from its committed state, if any."""
        row = self.outbox.load_states().get(rt.config.id)
        if row is None:
            return
        try:
            rt.tracker.restore_state(decode_state(rt.config.id, *row))
            rt.stored_key = state_key(rt)
        except StateRowError as exc:
            self.log.error(
                "stored clinical state unusable; the pump starts from unknown (baseline)",
                pump=rt.config.id,
                error=str(exc),
            )

    async def commit(
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
        state = _told(rt)
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
