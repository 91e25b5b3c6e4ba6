"""A scenario's pumps: each pump model built from its spec, and how the gateway reaches it.

:func:`build_pump` gives a :class:`~simulators.pump_model.SimulatedPump` its identity (the
protocol's defaults unless the spec says otherwise) and program; :func:`serial_line` puts it
behind its protocol's pump-side front-end. A :class:`PumpHandle` is what the timeline acts on,
an :class:`Endpoint` what the gateway configuration names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.registry import driver_spec, simulator_class
from simulators.bbraun_bcc import BccRack, BccRackServer
from simulators.faults import Faults
from simulators.pty_server import Line, PtyServer
from simulators.pump_model import DeviceIdentity, Program, SimulatedPump
from simulators.scenario import FaultSpec, PumpSpec, decimal

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


def faults_of(spec: FaultSpec) -> Faults:
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


def serial_line(protocol: str, pump: SimulatedPump, faults: Faults) -> Line:
    """The protocol's pump-side front-end (from the driver registry) with ``pump`` on it: at
    address 0 of a multidrop line, or alone on a point-to-point one."""
    cls = simulator_class(protocol)
    line: Line = cls({0: pump}, faults={0: faults}) if driver_spec(protocol).multidrop else cls(pump, faults=faults)
    return line
