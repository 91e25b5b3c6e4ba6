"""One inbound message from a vendor pump server: judge it, feed the pipeline, say what to ACK.

The order is the careful receiver's (docs/integration-engineer.md, "Vendor pump servers"):

1. parse (tolerant parser) and read MSH; no MSH -> AR;
2. message type and processing id this source accepts, else AR (ERR 200/202 at MSH-9/MSH-11);
3. MSH-10 present, else AE (ERR 101 at MSH-10);
4. duplicate detection against the durable receipts (same MSH-3 + MSH-10): the same content
   is a resend -> AA and ignored; other content under a reused id -> AR (ERR 205), logged;
5. conformance check (common/pcd/conformance): findings logged by rule and position (the
   finding texts quote the sender's values: DEBUG only). With ``conformance = "report"`` (the
   default) the message is only queued here and judged after the ACK (conformance.py); with
   ``refuse_errors`` the check decides AE, so it runs here, on the path;
6. mapping (gateway/sources/mapping.py) into device reports, each device to a pump id;
   an unusable message -> AE with ERR naming segment and field;
7. every device's snapshot through the pipeline (verdicts, events, HL7 out, MQTT), the receipt
   committed in the same transaction as the last device's messages and state -> AA.

A commit that fails returns ``None``: the listener then closes the connection without an
answer, so the sender resends (the pipeline commits what it owes first, then the receipt).
Messages of several connections are handled concurrently (their commits then share the
outbox's group commit), with two orders kept: a resend that races its first copy waits for it
and then finds its receipt (one in-flight entry per MSH-3 + MSH-10), and one pump's messages
go through the pipeline one at a time (a lock per pump, taken in pump-id order).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime

from common.pcd.conformance import check_message
from common.pcd.parse import Message, parse_message, transaction_of
from drivers.model import ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot
from gateway.config.model import SourceConfig, SourceDevice
from gateway.log import get_logger
from gateway.outbox import InboundReceipt, Outbox
from gateway.sources.ack import Outcome
from gateway.sources.conformance import ConformanceReporter, report_findings
from gateway.sources.mapping import DeviceReport, UnusableMessage, read_devices

_KIND = {"PCD-01": "pcd01", "PCD-10": "pcd10", "PCD-04": "pcd04"}
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")


class InboundHandler:
    def __init__(self, config: SourceConfig, pipeline, outbox: Outbox) -> None:
        self.config = config
        self.pipeline = pipeline
        self.outbox = outbox
        self.log = get_logger("pumpgw.source", source=config.name)
        self.devices = {d.device: d for d in config.devices}
        self._inflight: dict[tuple[str, str], asyncio.Event] = {}
        self._pump_locks: dict[str, asyncio.Lock] = {}
        self._labels: dict[str, dict[int, str]] = {}  # pump id -> VMD number -> channel id
        self.counters = {"received": 0, "accepted": 0, "duplicates": 0, "refused": 0, "unusable": 0}
        self.conformance = ConformanceReporter(self.log, self.counters)  # run by the listener

    async def handle(self, raw: bytes) -> tuple[Message, Outcome | None]:
        return await self._handle(raw)

    async def _handle(self, raw: bytes) -> tuple[Message, Outcome | None]:
        self.counters["received"] += 1
        message = parse_message(raw)
        msh = message.msh
        if msh is None:
            return message, self._refuse("AR", "100", "the message does not start with MSH", None, 0, None)
        tx = transaction_of(message)
        kind = _KIND.get(tx.name) if tx is not None else None
        if kind is None or kind not in self.config.accept:
            return message, self._refuse(
                "AR", "200", f"message type {msh.field(9)!r} is not accepted by this source", "MSH", 1, 9
            )
        if msh.field(11) not in self.config.processing_ids:
            return message, self._refuse(
                "AR",
                "202",
                f"processing id {msh.field(11)!r} is not accepted (accepted: {', '.join(self.config.processing_ids)})",
                "MSH",
                1,
                11,
            )
        control_id, sender = msh.field(10), msh.raw_field(3).strip()
        if not control_id:
            return message, self._refuse("AE", "101", "MSH-10 (message control id) is empty", "MSH", 1, 10)
        key = (sender, control_id)
        while key in self._inflight:  # the same control id on another connection: after it
            await self._inflight[key].wait()
        done = self._inflight[key] = asyncio.Event()
        try:
            return await self._receive(message, raw, kind, sender, control_id)
        finally:
            del self._inflight[key]
            done.set()

    async def _receive(
        self, message: Message, raw: bytes, kind: str, sender: str, control_id: str
    ) -> tuple[Message, Outcome | None]:
        digest = hashlib.sha256("\r".join(s.raw for s in message.segments).encode("utf-8")).hexdigest()
        known = self.outbox.receipt(self.config.name, sender, control_id)
        if known == digest:
            self.counters["duplicates"] += 1
            self.log.info("duplicate message acknowledged and ignored", control_id=control_id, kind=kind)
            return message, Outcome("AA")
        if known is not None:
            self.log.warning(
                "message refused: control id reused with different content", control_id=control_id, kind=kind
            )
            return message, self._refuse("AR", "205", "MSH-10 was already used for a different message", "MSH", 1, 10)
        if self.config.conformance == "refuse_errors":
            findings = check_message(message)
            report_findings(self.log, control_id, kind, findings)
            errors = [f for f in findings if f.severity == "error"]
            if errors:
                first = errors[0]
                self.counters["unusable"] += 1
                self.log.warning(
                    "message refused: conformance error",
                    control_id=control_id,
                    rule=first.rule,
                    segment=first.segment_id,
                    sequence=first.segment,
                    field=first.field,
                )
                return message, Outcome(
                    "AE", "207", f"[{first.rule}] {first.message}", first.segment_id, first.segment, first.field
                )
        outcome = await self._use(message, kind, sender, control_id, digest)
        if outcome is not None and self.config.conformance == "report":
            # after the commit, before the ACK is written: the check runs once the ACK is out
            self.conformance.submit(message, control_id, kind)
        return message, outcome

    async def _use(self, message: Message, kind: str, sender: str, control_id: str, digest: str) -> Outcome | None:
        """Map, then commit through the pipeline: AA, AE (unusable) or None (not committed)."""
        try:
            reports = read_devices(message)
            targets = [(self._pump_for(r), r) for r in reports]
        except UnusableMessage as exc:
            self.counters["unusable"] += 1
            self.log.warning(
                "message cannot be used",
                control_id=control_id,
                kind=kind,
                segment=exc.segment_id,
                sequence=exc.sequence,
                field=exc.field_no,
                error_code=exc.code,
            )
            self.log.debug("message cannot be used: detail", control_id=control_id, reason=exc.reason)
            return Outcome("AE", exc.code, exc.reason, exc.segment_id, exc.sequence, exc.field_no)
        receipt = InboundReceipt(self.config.name, sender, control_id, digest)
        locks = [self._pump_locks.setdefault(p, asyncio.Lock()) for p in sorted({p for p, _ in targets})]
        async with contextlib.AsyncExitStack() as stack:
            for lock in locks:
                await stack.enter_async_context(lock)
            for i, (pump_id, report) in enumerate(targets):
                snapshot = self._snapshot(pump_id, report, kind)
                committed = await self.pipeline.on_inbound(
                    pump_id,
                    snapshot,
                    receipts=[receipt] if i == len(targets) - 1 else [],
                    expected_weight=report.record_weight,
                    patient=report.patient,
                )
                if not committed:
                    self.log.error(
                        "inbound message not committed; no acknowledgement (the sender resends)",
                        control_id=control_id,
                        pump=pump_id,
                    )
                    return None
        self.counters["accepted"] += 1
        self.log.info("inbound message accepted", control_id=control_id, kind=kind, devices=len(targets))
        return Outcome("AA")

    def _refuse(self, code: str, error_code: str, text: str, seg: str | None, seq: int, field: int | None) -> Outcome:
        self.counters["refused"] += 1
        self.log.warning("message refused", code=code, error_code=error_code, segment=seg, field=field)
        return Outcome(code, error_code, text, seg or "", seq, field)

    def _pump_for(self, report: DeviceReport) -> str:
        device = self.devices.get(report.device)
        if device is not None:
            return device.id
        if self.config.admit != "any":
            raise UnusableMessage(report.segment, 18, "device is not configured for this source", code="204")
        pump_id = f"{self.config.name}-{_SAFE_ID.sub('_', report.device)}"[:64]
        device = SourceDevice(id=pump_id, device=report.device, care_area=self.config.default_care_area)
        self.devices[report.device] = device
        self.pipeline.admit(device)
        self.log.info("device admitted by rule", pump=pump_id, device=report.device)
        return pump_id

    def _snapshot(self, pump_id: str, report: DeviceReport, kind: str) -> PumpSnapshot:
        """The device's state after this message: a PCD-01 tells every channel, a PCD-10 one
        channel, a PCD-04 alarms only -- the rest is what the device last reported."""
        rt = self.pipeline.pumps[pump_id]
        last: PumpSnapshot | None = rt.last_snapshot
        labels = self._labels.setdefault(pump_id, {})
        previous = {c.channel_id: c for c in last.channels} if last is not None else {}
        channels: dict[str, ChannelSnapshot] = {} if kind == "pcd01" else dict(previous)
        for n, ch in sorted(report.channels.items()):
            cid = ch.label or labels.get(n) or str(n)
            labels[n] = cid
            v = ch.values
            old = previous.get(cid)
            channels[cid] = ChannelSnapshot(
                channel_id=cid,
                state=ch.state,
                rate=v.get("rate"),
                vtbi=v.get("vtbi"),
                volume_infused=v.get("volume_infused"),
                drug=ch.drug,
                concentration=v.get("concentration"),
                dose_rate=v.get("dose_rate"),
                care_area=ch.care_area,
                patient_weight=v.get("patient_weight"),
                alarms=old.alarms if old is not None else (),
            )
        for alert in report.alerts:
            named = labels.get(alert.channel) or (next(iter(channels)) if alert.channel == 0 and channels else None)
            target = named or str(alert.channel or 1)
            snap = channels.get(target) or ChannelSnapshot(channel_id=target, state=ChannelState.UNKNOWN)
            others = tuple(a for a in snap.alarms if a.code != alert.code)
            alarms = others if alert.ended else (*others, alert.alarm())
            channels[target] = replace(snap, alarms=alarms)
        identity = report.identity()
        if last is not None:
            known = last.identity
            identity = PumpIdentity(
                manufacturer=report.manufacturer or known.manufacturer,
                model=report.model or known.model,
                serial_number=identity.serial_number,
                firmware=known.firmware,
                drug_library_version=report.library_version or known.drug_library_version,
                udi=known.udi,
            )
        elif not report.manufacturer:
            identity = replace(identity, manufacturer=self.config.name)
        return PumpSnapshot(
            pump_id=pump_id, identity=identity, channels=tuple(channels.values()), received_at=datetime.now(UTC)
        )
