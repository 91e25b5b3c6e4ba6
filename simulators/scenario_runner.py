"""Runs a :class:`~simulators.scenario.Scenario`: every pump on its endpoint, the timeline.

NE-1000 and Alaris pumps get one pty each, served by :class:`~simulators.pty_server.PtyServer`
behind a stable symlink in ``pty_dir`` (so a disconnect/reconnect keeps the path the gateway
config names); B. Braun pumps sit in TCP racks on 127.0.0.1. The timeline is one owned task
that applies each action at its time (real seconds since :meth:`ScenarioRunner.start`).
:meth:`gateway_config_toml` writes the matching gateway configuration.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from common.resources import config_dir
from drivers.ne1000 import codec as ne_codec
from drivers.registry import driver_spec, simulator_class
from simulators.bbraun_bcc import BccRack, BccRackServer
from simulators.faults import Faults
from simulators.pty_server import Line, PtyServer
from simulators.pump_model import DeviceIdentity, Program, PumpModelError, SimulatedPump
from simulators.scenario import Action, FaultSpec, PumpSpec, Scenario, decimal

log = logging.getLogger("pumpgw.simulators.scenario")

# Identity of a simulated pump unless its spec says otherwise: manufacturer, model, firmware.
# (How each protocol is wired -- pty or rack, multidrop, baud rate -- is the driver registry's.)
_DEFAULTS = {
    "ne1000": ("New Era Pump Systems", "NE-1000", "3.928"),
    "alaris": ("BD", "Asena GH", "Asena Rev 2.1.5"),
    "bbraun-bcc": ("B. Braun", "688F030006", "688N030003"),
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    pump_id: str
    protocol: str
    path: str | None = None
    host: str | None = None
    port: int | None = None
    pillar: int | None = None
    slot: int | None = None

    def describe(self) -> str:
        if self.path:
            return f"{self.pump_id:<16} {self.protocol:<10} pty {self.path}"
        return (
            f"{self.pump_id:<16} {self.protocol:<10} tcp {self.host}:{self.port} pillar {self.pillar} slot {self.slot}"
        )


@dataclass
class PumpHandle:
    """One running simulated pump and what acts on it."""

    spec: PumpSpec
    pump: SimulatedPump
    faults: Faults
    pty: PtyServer | None = None
    rack: BccRack | None = None
    rack_server: BccRackServer | None = None
    applied: list[str] = field(default_factory=list)


def _faults(spec: FaultSpec) -> Faults:
    return Faults(spec.corrupt_checksum, spec.garbage_before_reply.encode("latin-1"), spec.silent, spec.reply_delay_s)


def build_pump(spec: PumpSpec, *, acceleration: float, clock: Callable[[], float] = time.monotonic) -> SimulatedPump:
    manufacturer, model, firmware = _DEFAULTS[spec.protocol]
    program = None
    rate = decimal(spec.rate_ml_h)
    assert rate is not None  # rate_ml_h is a number, never absent
    if spec.rate_ml_h > 0 or spec.drug:
        program = Program(
            rate_ml_h=rate,
            vtbi_ml=decimal(spec.vtbi_ml),
            drug=spec.drug,
            concentration=decimal(spec.concentration),
            concentration_unit=spec.concentration_unit,
        )
    lab = spec.protocol == "ne1000"  # syringe pumps stop at the end, no KVO (§2)
    return SimulatedPump(
        DeviceIdentity(manufacturer, spec.model or model, spec.serial or f"SIM-{spec.id}", spec.firmware or firmware),
        program=program,
        running=spec.running and program is not None and program.rate_ml_h > 0,
        acceleration=spec.acceleration or acceleration,
        clock=clock,
        kvo_on_complete=not lab,
        alarm_on_complete=not lab,
        clock_drift_ppm=spec.clock_drift_ppm,
    )


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
        faults = _faults(spec.faults)
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
            _serial_line(spec.protocol, pump, faults),
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
            await self._apply(handle, action)
        except PumpModelError as exc:
            log.warning("scenario: %s refused %s: %s", pump_id, action.action, exc)
            return
        elapsed = asyncio.get_running_loop().time() - self._t0
        self.applied.append((elapsed, pump_id, action.action))
        log.info("scenario t=%.1fs: %s %s", elapsed, pump_id, action.action)

    async def _apply(self, h: PumpHandle, a: Action) -> None:
        pump = h.pump
        match a.action:
            case "alarm":
                pump.clear_alarm(a.kind or "")  # a repeated alarm is a new onset
                pump.set_alarm(a.kind or "")
            case "clear_alarm":
                pump.clear_alarm(a.kind or "")
            case "start":
                pump.start()
            case "stop":
                pump.stop()
            case "pause":
                pump.pause()
            case "resume":
                pump.resume()
            case "titrate":
                pump.titrate(rate_ml_h=decimal(a.rate_ml_h))
            case "set_vtbi":
                pump.set_vtbi(None if not a.vtbi_ml else decimal(a.vtbi_ml))
            case "fault":
                for name in ("corrupt_checksum", "silent", "reply_delay_s"):
                    if getattr(a, name) is not None:
                        setattr(h.faults, name, getattr(a, name))
                if a.garbage_before_reply is not None:
                    h.faults.garbage_before_reply = a.garbage_before_reply.encode("latin-1")
            case "clear_faults":
                h.faults.clear()
            case "disconnect":
                await self._disconnect(h)
                if a.duration_s:
                    self._reconnects.append(
                        asyncio.create_task(
                            self._reconnect_after(h, a.duration_s), name=f"scenario reconnect {h.spec.id}"
                        )
                    )
            case "reconnect":
                await self._reconnect(h)
            case "swap_identity":
                self._swap_identity(h, a.serial or "", a.firmware)
            case "firmware":
                self._set_firmware(h, a.firmware or "")
                if h.spec.protocol == "ne1000" and h.pty is not None:
                    h.pump.clear_alarm("pump_reset")
                    h.pump.set_alarm("pump_reset")  # a firmware update reboots the pump: A?R, identity re-read
            case "library":
                h.pump.identity = replace(h.pump.identity, library_version=a.library_version)
            case "identity_unreadable":
                h.pump.identity = replace(h.pump.identity, readable=False)
            case "identity_readable":
                h.pump.identity = replace(h.pump.identity, readable=True)
            case "clock_jump":
                pump.jump_clock(a.seconds or 0.0)
            case "remove":
                if h.rack is None:
                    raise PumpModelError("remove/insert are rack actions (bbraun-bcc)")
                h.rack.remove(h.spec.pillar or 0, h.spec.slot or 0)
            case "insert":
                if h.rack is None:
                    raise PumpModelError("remove/insert are rack actions (bbraun-bcc)")
                h.rack.insert(h.spec.pillar or 0, h.spec.slot or 0, pump, h.faults)

    async def _disconnect(self, h: PumpHandle) -> None:
        if h.pty is not None:
            h.pty.disconnect()
        elif h.rack_server is not None:
            await h.rack_server.suspend()  # the rack's link: every pump on it goes

    async def _reconnect(self, h: PumpHandle) -> None:
        if h.pty is not None:
            h.pty.reconnect()
        elif h.rack_server is not None:
            await h.rack_server.resume()

    async def _reconnect_after(self, h: PumpHandle, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._reconnect(h)

    def _swap_identity(self, h: PumpHandle, serial: str, firmware: str | None) -> None:
        """Another pump on the same port: new serial, fresh power-up."""
        identity = replace(h.pump.identity, serial_number=serial, firmware=firmware or h.pump.identity.firmware)
        h.pump.identity = identity
        if h.spec.protocol == "ne1000" and h.pty is not None:
            h.pump.clear_alarm("pump_reset")
            h.pump.set_alarm("pump_reset")  # the swapped pump powers up: A?R, identity re-read
            if firmware:
                self._set_firmware(h, firmware)
        if h.rack is not None:  # out of the slot and back: GNERR 39, then GNNEW (§6.6)
            h.rack.remove(h.spec.pillar or 0, h.spec.slot or 0)
            h.rack.insert(h.spec.pillar or 0, h.spec.slot or 0, h.pump, h.faults)

    def _set_firmware(self, h: PumpHandle, firmware: str) -> None:
        h.pump.identity = replace(h.pump.identity, firmware=firmware)
        if h.spec.protocol == "ne1000" and h.pty is not None:
            major, _, minor = firmware.partition(".")
            state = h.pty.line.pumps[0]  # type: ignore[attr-defined]
            state.version = ne_codec.Version(state.version.model_number, int(major or 0), minor or "0")

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


def _serial_line(protocol: str, pump: SimulatedPump, faults: Faults) -> Line:
    """The protocol's pump-side front-end (from the driver registry) with ``pump`` on it: at
    address 0 of a multidrop line, or alone on a point-to-point one."""
    cls = simulator_class(protocol)
    line: Line = cls({0: pump}, faults={0: faults}) if driver_spec(protocol).multidrop else cls(pump, faults=faults)
    return line


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
