"""Runs a :class:`~simulators.scenario.Scenario`: every pump on its endpoint, the timeline.

NE-1000 and Alaris pumps get one pty each, served by :class:`~simulators.pty_server.PtyServer`
behind a stable symlink in ``pty_dir`` (so a disconnect/reconnect keeps the path the gateway
config names); B. Braun pumps sit in TCP racks on 127.0.0.1. The timeline is one owned task
that applies each action at its time (real seconds since :meth:`ScenarioRunner.start`); what an
action does is in :mod:`simulators.scenario_actions`, how a pump is built in
:mod:`simulators.scenario_pumps`.
:meth:`gateway_config_toml` writes the matching gateway configuration.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from common.resources import config_dir
from drivers.registry import driver_spec
from simulators.bbraun_bcc import BccRack, BccRackServer
from simulators.pty_server import PtyServer
from simulators.pump_model import PumpModelError
from simulators.scenario import Action, PumpSpec, Scenario
from simulators.scenario_actions import apply_action, reconnect
from simulators.scenario_pumps import Endpoint, PumpHandle, build_pump, faults_of, serial_line

log = logging.getLogger("pumpgw.simulators.scenario")


class ScenarioRunner:
    def __init__(self, scenario: Scenario, *, pty_dir: str | Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.scenario = scenario
        self.pty_dir = Path(pty_dir)
        self._clock = clock
        self.handles: dict[str, PumpHandle] = {}
        self.racks: dict[str, tuple[BccRack, BccRackServer]] = {}
        self.endpoints: list[Endpoint] = []
        self.applied: list[tuple[float, str, str]] = []
        self._timeline: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self._reconnects: list[asyncio.Task[None]] = []

    async def start(self) -> list[Endpoint]:
        """Open every endpoint; on failure everything opened so far is closed again."""
        sim = self.scenario.simulation
        try:
            for rack_spec in self.scenario.racks.values():
                rack = BccRack(
                    pillars=rack_spec.pillars,
                    slots=rack_spec.slots,
                    bed_id=rack_spec.bed_id,
                    stuffing=rack_spec.stuffing,
                )
                server = BccRackServer(rack, host=sim.rack_host, port=rack_spec.port)
                self.racks[rack_spec.id] = (rack, server)
                await server.start()
            for spec in self.scenario.pumps:
                await self._start_pump(spec)
        except BaseException:
            await self.stop()
            raise
        self._t0 = asyncio.get_running_loop().time()
        self._timeline = asyncio.create_task(self._run_timeline(), name="scenario timeline")
        return list(self.endpoints)

    async def _start_pump(self, spec: PumpSpec) -> None:
        pump = build_pump(spec, acceleration=self.scenario.simulation.acceleration, clock=self._clock)
        faults = faults_of(spec.faults)
        handle = PumpHandle(spec, pump, faults)
        self.handles[spec.id] = handle
        if driver_spec(spec.protocol).link == "tcp":
            assert spec.rack and spec.pillar and spec.slot
            rack, rack_server = self.racks[spec.rack]
            rack.insert(spec.pillar, spec.slot, pump, faults)
            handle.rack, handle.rack_server = rack, rack_server
            self.endpoints.append(
                Endpoint(
                    spec.id,
                    spec.protocol,
                    host=rack_server.host,
                    port=rack_server.port,
                    pillar=spec.pillar,
                    slot=spec.slot,
                )
            )
            return
        pty = PtyServer(
            serial_line(spec.protocol, pump, faults),
            link_path=str(self.pty_dir / spec.id),
            name=spec.id,
            tick_s=self.scenario.simulation.tick_s,
        )
        handle.pty = pty
        await pty.start()
        self.endpoints.append(Endpoint(spec.id, spec.protocol, path=pty.path))

    async def wait(self) -> None:
        """Until the timeline has run out (then the pumps keep running)."""
        if self._timeline is not None:
            await asyncio.shield(self._timeline)

    async def stop(self) -> None:
        tasks = [t for t in (self._timeline, *self._reconnects) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._timeline = None
        self._reconnects.clear()
        for handle in self.handles.values():
            if handle.pty is not None:
                await handle.pty.stop()
        for _rack, server in self.racks.values():
            await server.stop()

    async def __aenter__(self) -> ScenarioRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- timeline ----------------------------------------------------------------------

    async def _run_timeline(self) -> None:
        entries = sorted(((a.t_s, pid, a) for pid, h in self.handles.items() for a in h.spec.at), key=lambda e: e[0])
        loop = asyncio.get_running_loop()
        for t_s, pump_id, action in entries:
            wait = self._t0 + t_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.apply(pump_id, action)

    async def apply(self, pump_id: str, action: Action) -> None:
        """Apply one action now; a refusal by the pump model is logged, not fatal."""
        handle = self.handles[pump_id]
        try:
            await apply_action(handle, action, reconnect_later=self._reconnect_later)
        except PumpModelError as exc:
            log.warning("scenario: %s refused %s: %s", pump_id, action.action, exc)
            return
        elapsed = asyncio.get_running_loop().time() - self._t0
        self.applied.append((elapsed, pump_id, action.action))
        log.info("scenario t=%.1fs: %s %s", elapsed, pump_id, action.action)

    def _reconnect_later(self, h: PumpHandle, seconds: float) -> None:
        self._reconnects.append(
            asyncio.create_task(self._reconnect_after(h, seconds), name=f"scenario reconnect {h.spec.id}")
        )

    async def _reconnect_after(self, h: PumpHandle, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await reconnect(h)

    # -- the matching gateway configuration ----------------------------------------------

    def gateway_config_toml(self, *, ehr_port: int, outbox_path: str, ehr_host: str = "127.0.0.1") -> str:
        library = config_dir() / "drug-library.example.json"
        lines = [
            f"# Written by `pumpgw simulate --scenario {self.scenario.path}`: the gateway side of",
            "# the simulated ward. Valid while the simulator runs (pty paths, rack ports).",
            "[gateway]",
            'site = "sim-hospital"',
            'ward = "sim-ward"',
            'gateway_id = "gw-sim"',
            'eui64 = "00-1B-C5-0C-00-00-5E-01"',
            "",
            "[hl7]",
            'processing_id = "D"',
            "",
            "[outbox]",
            f"path = {_q(outbox_path)}",
            "",
            "# The example drug library shipped with pumpgw, pinned: every reported program is",
            "# checked against it (the simulated protocols report rates, not drugs).",
            "[library]",
            f"path = {_q(str(library))}",
            f'sha256 = "{hashlib.sha256(library.read_bytes()).hexdigest()}"',
            "",
            "[[destinations]]",
            'name = "ehr"',
            f"host = {_q(ehr_host)}",
            f"port = {ehr_port}",
            'messages = ["pcd01", "pcd10", "pcd04"]',
            "",
        ]
        for endpoint in self.endpoints:
            spec = self.handles[endpoint.pump_id].spec
            if endpoint.path:
                baudrate = driver_spec(spec.protocol).baudrate or 9600
                link = f'{{ type = "serial", url = {_q(endpoint.path)}, baudrate = {baudrate} }}'
            else:
                link = (
                    f'{{ type = "tcp", host = {_q(endpoint.host or "")}, port = {endpoint.port}, '
                    f"pillar = {endpoint.pillar}, slot = {endpoint.slot} }}"
                )
            lines += [
                "[[pumps]]",
                f"id = {_q(endpoint.pump_id)}",
                f"protocol = {_q(endpoint.protocol)}",
                f"poll_interval_s = {spec.poll_interval_s!r}",
                f"care_area = {_q(spec.care_area)}",
                f"link = {link}",
                "",
            ]
        return "\n".join(lines)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
