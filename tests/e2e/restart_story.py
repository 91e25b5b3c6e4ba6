"""A ward story told across restarts of a real ``pumpgw run``, read back at the receiver.

The harness runs simulated pumps (NE-1000 and Alaris-style on ptys, B. Braun racks on TCP)
and the EHR receiver simulator in this process, and ``pumpgw run`` as a subprocess. Phase by
phase it starts the daemon, changes the ward at random moments -- alarms raised and cleared,
titrations, pumps and racks unplugged and plugged back -- and ends the phase with SIGKILL (or
SIGTERM) at a random moment. A last phase quiets the ward (every alarm cleared, every pump
infusing and reachable), waits until the daemon has told it all, and stops it cleanly.

Then it reads back every message the receiver logged (its JSON-lines file) and counts what a
receiver would have been told wrong (:func:`gateway.hl7.story.check_story`): orphaned alarm
onsets, delivery starts after starts, offline pumps never reported online again. All must be 0.

Used by ``tests/e2e/test_restart_story.py`` (a small ward, 2 SIGKILLs and a SIGTERM) and by
``bench/restart_story.py`` (500 pumps, 5 SIGKILLs). It lives with the tests, not in
``simulators/``: it drives the daemon and judges what it said (``gateway.hl7.story``), while
the simulators stand alone without the daemon (tests/test_import_rules.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.hl7.story import StoryReport, check_story
from simulators.ehr import EhrReceiver
from simulators.scenario import Action, GroupSpec, Scenario, ScenarioFile, Simulation
from simulators.scenario_runner import ScenarioRunner

REPO = Path(__file__).resolve().parents[2]


@dataclass
class StoryPlan:
    ne1000: int = 6
    alaris: int = 6
    bbraun: int = 4
    kills: int = 2  # SIGKILL phases
    sigterms: int = 1  # SIGTERM phases (interleaved)
    phase_s: tuple[float, float] = (5.0, 8.0)  # random length of each phase
    actions_per_phase: int = 6
    poll_interval_s: float = 0.5
    settle_timeout_s: float = 60.0
    seed: int = 12


@dataclass
class StoryResult:
    report: StoryReport
    phases: list[str] = field(default_factory=list)
    actions: int = 0
    received: int = 0
    seconds: float = 0.0


def _scenario(plan: StoryPlan) -> Scenario:
    groups = []
    if plan.ne1000:
        groups.append(
            GroupSpec(
                count=plan.ne1000,
                id_prefix="ne-",
                protocol="ne1000",
                rate_ml_h=5,
                rate_step_ml_h=0.5,
                poll_interval_s=plan.poll_interval_s,
            )
        )
    if plan.alaris:
        groups.append(
            GroupSpec(
                count=plan.alaris,
                id_prefix="al-",
                protocol="alaris",
                serial_prefix="8002-",
                rate_ml_h=10,
                rate_step_ml_h=0.25,
                vtbi_ml=5000,
                poll_interval_s=plan.poll_interval_s,
            )
        )
    if plan.bbraun:
        groups.append(
            GroupSpec(
                count=plan.bbraun,
                id_prefix="bb-",
                protocol="bbraun-bcc",
                rate_ml_h=3,
                rate_step_ml_h=0.1,
                poll_interval_s=max(plan.poll_interval_s, 1.0),
            )
        )
    return Scenario(ScenarioFile(simulation=Simulation(acceleration=1.0), groups=groups, racks=[]))


def _gateway_config(runner: ScenarioRunner, *, ehr_port: int, outbox: Path, plan: StoryPlan) -> str:
    """The runner's config with a bed per pump (PV1-3), quick loss detection, JSON logs."""
    text = runner.gateway_config_toml(ehr_port=ehr_port, outbox_path=str(outbox))
    text = text.replace('processing_id = "D"', 'processing_id = "D"\npcd01_interval_s = 30')
    lost_after = max(2.0, 3 * plan.poll_interval_s)
    text = re.sub(
        r'^id = "([^"]+)"$',
        rf'id = "\1"\nlocation = "\1"\ncomm_lost_after_s = {lost_after}\n'
        r"request_timeout_s = 0.5",
        text,
        flags=re.M,
    )
    text = text.replace("[[destinations]]", '[logging]\nformat = "json"\n\n[[destinations]]', 1)
    return text + "\n"


class _Ward:
    """What the harness did to each pump, so the quiet end can undo it."""

    def __init__(self, runner: ScenarioRunner, rng: random.Random) -> None:
        self.runner = runner
        self.rng = rng
        self.pty_pumps = [pid for pid, h in runner.handles.items() if h.pty is not None]
        self.racks: dict[str, str] = {}  # rack id -> one pump id on it
        for pid, h in runner.handles.items():
            if h.spec.rack is not None:
                self.racks.setdefault(h.spec.rack, pid)
        self.alarmed: set[str] = set()
        self.unplugged: set[str] = set()  # pump ids (pty) or rack representatives
        self.count = 0

    async def act(self) -> None:
        choices = (
            ["alarm", "titrate", "unplug"]
            + (["clear"] * 2 if self.alarmed else [])
            + (["plug"] if self.unplugged else [])
        )
        what = self.rng.choice(choices)
        if what == "plug":
            pid = self.rng.choice(sorted(self.unplugged))
            self.unplugged.discard(pid)
            await self.runner.apply(pid, Action(t_s=0, action="reconnect"))
        elif what == "clear":
            pid = self.rng.choice(sorted(self.alarmed))
            self.alarmed.discard(pid)
            await self.runner.apply(pid, Action(t_s=0, action="clear_alarm", kind="occlusion"))
            await self.runner.apply(pid, Action(t_s=0, action="start"))
        elif what == "unplug" and (self.pty_pumps or self.racks):
            candidates = [p for p in self.pty_pumps + list(self.racks.values()) if p not in self.unplugged]
            if candidates:
                pid = self.rng.choice(candidates)
                self.unplugged.add(pid)
                await self.runner.apply(pid, Action(t_s=0, action="disconnect"))
        elif self.pty_pumps:
            pid = self.rng.choice(self.pty_pumps)
            if what == "alarm" and pid not in self.alarmed:
                self.alarmed.add(pid)
                await self.runner.apply(pid, Action(t_s=0, action="alarm", kind="occlusion"))
            elif pid not in self.alarmed:
                rate = self.rng.choice([2.0, 4.0, 6.5, 8.0, 12.0])
                await self.runner.apply(pid, Action(t_s=0, action="titrate", rate_ml_h=rate))
        self.count += 1

    async def quiet(self) -> None:
        for pid in sorted(self.unplugged):
            await self.runner.apply(pid, Action(t_s=0, action="reconnect"))
        self.unplugged.clear()
        for pid in self.pty_pumps:
            pump = self.runner.handles[pid].pump
            for alarm in pump.alarms:
                pump.clear_alarm(alarm.kind)
            if pump.state.value != "infusing":
                await self.runner.apply(pid, Action(t_s=0, action="start"))
        self.alarmed.clear()


def _settled(outbox: Path, pumps: list[str], pty_pumps: set[str]) -> bool:
    """Every message delivered and every pump's committed state quiet (no alarm, online)."""
    try:
        with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=1) as db:
            busy = db.execute("SELECT count(*) FROM messages WHERE state IN ('pending', 'in_flight')").fetchone()[0]
            states = {r[0]: json.loads(r[1]) for r in db.execute("SELECT pump_id, state FROM pump_state")}
    except sqlite3.Error:
        return False
    if busy:
        return False
    for pid in pumps:
        s = states.get(pid)
        if s is None or s["alarms"] or s["lost"] is not None:
            return False
        if pid in pty_pumps and (not s["channels"] or any(c["state"] != "infusing" for c in s["channels"])):
            return False
    return True


async def _stop(proc: asyncio.subprocess.Process, sig: int) -> None:
    if proc.returncode is None:
        proc.send_signal(sig)
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def run_restart_story(workdir: Path, plan: StoryPlan, *, progress=None) -> StoryResult:
    """Run the whole story in ``workdir``; returns the receiver-side report."""
    t_start = time.monotonic()
    rng = random.Random(plan.seed)
    say = progress or (lambda _msg: None)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "ptys").mkdir(exist_ok=True)
    log_path = workdir / "ehr.jsonl"
    outbox = workdir / "outbox.sqlite"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NOTIFY_SOCKET", None)
    receiver = EhrReceiver(port=0, log_path=log_path)
    port = await receiver.start()
    result = StoryResult(report=StoryReport())
    endings = ["kill"] * plan.kills + ["term"] * plan.sigterms
    rng.shuffle(endings)
    try:
        async with ScenarioRunner(_scenario(plan), pty_dir=workdir / "ptys") as runner:
            config = workdir / "gw.toml"
            config.write_text(_gateway_config(runner, ehr_port=port, outbox=outbox, plan=plan), encoding="utf-8")
            ward = _Ward(runner, rng)
            daemon_log = open(workdir / "daemon.log", "ab")  # noqa: SIM115 - closed below
            try:
                for n, ending in enumerate(endings, 1):
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "gateway",
                        "run",
                        "--config",
                        str(config),
                        env=env,
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=daemon_log,
                    )
                    length = rng.uniform(*plan.phase_s)
                    moments = sorted(rng.uniform(0.3, length) for _ in range(plan.actions_per_phase))
                    t0 = time.monotonic()
                    for moment in moments:
                        await asyncio.sleep(max(0.0, t0 + moment - time.monotonic()))
                        await ward.act()
                    await asyncio.sleep(max(0.0, t0 + length - time.monotonic()))
                    await _stop(proc, signal.SIGKILL if ending == "kill" else signal.SIGTERM)
                    result.phases.append(f"{ending}@{length:.1f}s")
                    say(
                        f"phase {n}/{len(endings)}: {ending} after {length:.1f} s "
                        f"({ward.count} actions so far, {len(receiver.received)} messages received)"
                    )
                await ward.quiet()
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "gateway",
                    "run",
                    "--config",
                    str(config),
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=daemon_log,
                )
                try:
                    deadline = time.monotonic() + plan.settle_timeout_s
                    pumps = list(runner.handles)
                    pty_pumps = set(ward.pty_pumps)
                    while not _settled(outbox, pumps, pty_pumps):
                        if time.monotonic() > deadline or proc.returncode is not None:
                            raise AssertionError(
                                f"the ward did not settle within {plan.settle_timeout_s} s "
                                f"(daemon exit code {proc.returncode}; see {workdir / 'daemon.log'})"
                            )
                        await asyncio.sleep(0.25)
                    await asyncio.sleep(2 * plan.poll_interval_s)  # a late change would show now
                    while not _settled(outbox, pumps, pty_pumps):
                        await asyncio.sleep(0.25)
                finally:
                    await _stop(proc, signal.SIGTERM)
                result.phases.append("quiet+term")
            finally:
                daemon_log.close()
    finally:
        await receiver.stop()
    raws = [json.loads(line)["raw"].encode("utf-8") for line in log_path.read_text(encoding="utf-8").splitlines()]
    result.received = len(raws)
    result.actions = ward.count
    result.report = check_story(raws)
    result.seconds = time.monotonic() - t_start
    return result
