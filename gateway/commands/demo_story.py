"""The demo's one-minute story: scripted nurse actions on the simulated pumps, and what the
gateway makes of them, announced on the terminal as it happens.

The script acts on the simulated pumps only (the gateway never writes to a pump). The
announcements are read from the gateway itself -- the poller's communication state, the
pipeline's last snapshot and drug-library verdicts -- and from what the EHR simulator
acknowledged, so the terminal shows the real chain: pump -> gateway -> HL7 receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulators.faults import Faults
    from simulators.pump_model import SimulatedPump

Action = Callable[["SimulatedPump", "Faults"], None]  # what a nurse (or a pulled cable) does

STORY_S = 60.0


@dataclass(frozen=True)
class Step:
    at_s: float
    pump: str
    text: str
    act: Action
    # The cable goes back in only once the gateway has said the pump is lost: told on a fast
    # pace (or a slow machine), the loss would otherwise be shorter than comm_lost_after_s.
    after_lost: bool = False


def _titrate(rate: str) -> Action:
    return lambda pump, _faults: pump.titrate(rate_ml_h=Decimal(rate))


def _restart_after_occlusion(pump: SimulatedPump, _faults: Faults) -> None:
    pump.clear_alarm("occlusion")
    pump.start()


def _silent(on: bool) -> Action:
    def act(_pump: SimulatedPump, faults: Faults) -> None:
        if on:
            faults.silent = True
        else:
            faults.clear()

    return act


STEPS: tuple[Step, ...] = (
    Step(4, "bed02", "nurse starts sodium chloride 0.9 % at 100 mL/h (infusion start)", lambda p, _f: p.start()),
    Step(12, "bed01", "nurse titrates dopamine from 15.4 to 22 mL/h", _titrate("22")),
    Step(
        20,
        "bed03",
        "the heparin line kinks: occlusion (an NE-1000 reports it as a motor stall)",
        lambda p, _f: p.set_alarm("occlusion"),
    ),
    Step(28, "bed03", "nurse clears the occlusion and restarts", _restart_after_occlusion),
    Step(34, "bed01", "1200 mL/h keyed in by mistake (the drug library should object)", _titrate("1200")),
    Step(40, "bed01", "nurse corrects the rate to 22 mL/h", _titrate("22")),
    Step(44, "bed02", "its USB cable is pulled: the pump goes silent", _silent(True)),
    Step(54, "bed02", "cable plugged back in", _silent(False), after_lost=True),
)


def prepare(pumps: dict) -> None:
    """After the simulators started, before the gateway's first poll: the pumps were powered
    on earlier (no power-up reset alarm to report) and bed02 has its program loaded but not
    started."""
    for pump in pumps.values():
        pump.clear_alarm("pump_reset")
    if "bed02" in pumps:
        pumps["bed02"].stop()


class Story:
    """Owned by the demo's supervisor as two services: the script and the announcer."""

    def __init__(
        self, daemon, receiver, pumps: dict, faults: dict, *, out: Callable[[str], None] = print, pace: float = 1.0
    ) -> None:
        self.daemon = daemon
        self.receiver = receiver
        self.pumps = pumps
        self.faults = faults
        self.out = out
        self.pace = pace  # 0.5: the same story in half the time
        self.t0 = time.monotonic()
        self._seen_ehr = 0
        self._last: dict[str, dict] = {}
        self._lost_told: dict[str, asyncio.Event] = {}  # set once "COMMUNICATION LOST" was said

    def say(self, who: str, text: str) -> None:
        self.out(f"[{time.monotonic() - self.t0:5.1f}s] {who:<8} {text}")

    async def script(self, *, exit_after: bool = False) -> None:
        await self.daemon.supervisor.wait_started()
        self.t0 = time.monotonic()
        self.say("demo", "the gateway is polling 3 pumps; the story takes a minute")
        for step in STEPS:
            if step.pump not in self.pumps:
                continue
            await asyncio.sleep(max(0.0, step.at_s * self.pace - (time.monotonic() - self.t0)))
            if step.after_lost:
                await self._until_lost(step.pump)
            self.say(step.pump, "ward: " + step.text)
            step.act(self.pumps[step.pump], self.faults[step.pump])
        await asyncio.sleep(max(0.0, STORY_S * self.pace - (time.monotonic() - self.t0)))
        if exit_after:
            self.say("demo", "story complete; stopping")
            await asyncio.sleep(2)  # the last messages reach the EHR and MQTT before the stop
            self.daemon.supervisor.request_stop()
            return
        self.say("demo", "story complete; the gateway keeps running (status page above, Ctrl-C to stop)")
        await asyncio.Event().wait()

    async def _until_lost(self, pump_id: str, limit_s: float = 60.0) -> None:
        # a gateway that never notices must not stall the story (the test then sees no loss)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit_s):
                await self._lost_told.setdefault(pump_id, asyncio.Event()).wait()

    async def announce(self, period_s: float = 0.25) -> None:
        await self.daemon.supervisor.wait_started()
        while True:
            self._diff_gateway()
            self._diff_ehr()
            await asyncio.sleep(period_s)

    def _diff_gateway(self) -> None:
        lost = {state.config.id: state.lost for poller in self.daemon.pollers for state in poller.pumps}
        for pump_id, rt in self.daemon.pipeline.pumps.items():
            snap = rt.last_snapshot
            ch = snap.channels[0] if snap is not None and snap.channels else None
            verdict = rt.verdicts.get(ch.channel_id) if ch is not None else None
            now = {
                "lost": lost.get(pump_id, False),
                "state": ch.state.value if ch else None,
                "rate": f"{ch.rate.value.normalize():f} {ch.rate.unit}" if ch and ch.rate else None,
                "alarms": tuple(sorted(a.kind for a in ch.alarms)) if ch else (),
                "verdict": (verdict.severity.value, tuple(str(k) for k in verdict.kinds)) if verdict else None,
            }
            if ch is None:
                continue  # no reply yet: nothing to compare
            before = self._last.get(pump_id)
            self._last[pump_id] = now
            if before is None:
                continue
            if now["lost"] != before["lost"]:
                self.say(
                    pump_id,
                    "gateway: COMMUNICATION LOST (reported to the EHR and MQTT)"
                    if now["lost"]
                    else "gateway: communication restored",
                )
                if now["lost"]:
                    self._lost_told.setdefault(pump_id, asyncio.Event()).set()
            if now["state"] != before["state"] and before["state"] is not None:
                self.say(pump_id, f"gateway: {before['state']} -> {now['state']}")
            if now["rate"] != before["rate"] and before["rate"] is not None:
                self.say(pump_id, f"gateway: rate {before['rate']} -> {now['rate']}")
            for kind in sorted(set(now["alarms"]) - set(before["alarms"])):
                self.say(pump_id, f"gateway: ALARM {kind} raised")
            for kind in sorted(set(before["alarms"]) - set(now["alarms"])):
                self.say(pump_id, f"gateway: alarm {kind} cleared")
            if now["verdict"] != before["verdict"] and now["verdict"] is not None:
                severity, kinds = now["verdict"]
                self.say(pump_id, f"drug library: {severity.upper()} {', '.join(kinds)}")

    def _diff_ehr(self) -> None:
        received = self.receiver.received
        for record in received[self._seen_ehr :]:
            text = _describe_hl7(record.raw)
            if text:
                self.say("EHR", text)
        self._seen_ehr = len(received)


def _describe_hl7(raw: bytes) -> str | None:
    """PCD-10 events and PCD-04 alarms as one line (periodic PCD-01 are not announced)."""
    text = raw.decode("utf-8", "replace")
    segments = text.replace("\n", "\r").split("\r")
    msh = next((s for s in segments if s.startswith("MSH|")), "")
    kind = msh.split("|")[8] if msh.count("|") >= 8 else ""
    pv1 = next((s for s in segments if s.startswith("PV1|")), "")
    bed = pv1.split("|")[3].split("^")[-1] if pv1.count("|") >= 3 else "?"
    if kind.startswith("ORU^R42"):
        for seg in segments:
            if "MDC_ATTR_EVT_COND" in seg:
                code = seg.split("|")[5].split("^")[1] if seg.count("|") >= 5 else "?"
                name = code.removeprefix("MDC_EVT_PUMP_").removeprefix("MDC_EVT_").lower().replace("_", " ")
                return f"received PCD-10 event '{name}' for {bed}"
    if kind.startswith("ORU^R40"):
        alarm = phase = "?"
        for seg in segments:
            fields = seg.split("|")
            if seg.startswith("OBX|1|") and len(fields) > 5:
                alarm = fields[5].split("^")[-1] or alarm
            if "MDC_ATTR_EVENT_PHASE" in seg and len(fields) > 5:
                phase = fields[5]
        return f"received PCD-04 alarm '{alarm}' ({phase}) for {bed}"
    return None
