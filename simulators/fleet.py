"""Several simulated NE-1000 pumps, one pty each, started and stopped together (the demo).

Each pump gets its own line (address 0) like a bedside pump on its own USB adapter, so a
fault or a slow reply on one bed never delays another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

from simulators.ne1000.faults import Faults
from simulators.ne1000.pty import Ne1000PtySimulator
from simulators.pump_model import DeviceIdentity, Program, SimulatedPump


class PtyFleet:
    """Async context manager: ``async with PtyFleet(pumps) as fleet: fleet.paths["bed01"]``."""

    def __init__(self, pumps: dict[str, SimulatedPump], *, faults: dict[str, Faults] | None = None) -> None:
        faults = faults or {}
        self.pumps = dict(pumps)
        self.simulators: dict[str, Ne1000PtySimulator] = {
            pump_id: Ne1000PtySimulator(pump, faults=faults.get(pump_id), name=pump_id)
            for pump_id, pump in pumps.items()
        }
        self.paths: dict[str, str] = {}

    async def start(self) -> dict[str, str]:
        """Open every pty; returns pump id -> slave path. On failure nothing stays open."""
        try:
            for pump_id, simulator in self.simulators.items():
                self.paths[pump_id] = await simulator.start()
        except BaseException:
            await self.stop()
            raise
        return dict(self.paths)

    async def stop(self) -> None:
        for simulator in self.simulators.values():
            await simulator.stop()
        self.paths.clear()

    async def __aenter__(self) -> PtyFleet:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _ne1000(serial: str, *, clock: Callable[[], float], acceleration: float, program: Program) -> SimulatedPump:
    # NE-1000 syringe pumps stop when the volume is dispensed: no KVO, no completion alarm.
    return SimulatedPump(
        DeviceIdentity("New Era Pump Systems", "NE-1000", serial, "3.928"),
        program=program,
        running=True,
        acceleration=acceleration,
        clock=clock,
        kvo_on_complete=False,
        alarm_on_complete=False,
    )


def demo_pumps(*, clock: Callable[[], float] = time.monotonic) -> dict[str, SimulatedPump]:
    """Three beds for the demo, each showing something different within two minutes.

    * bed01: dopamine 1.6 mg/mL at 15.4 mL/h, VTBI 250 mL, real time -- a steady infusion;
    * bed02: sodium chloride 0.9 % at 100 mL/h, VTBI 50 mL, 30x time -- completes (status
      ``I`` -> ``S``) after one real minute;
    * bed03: heparin 100 units/mL at 8 mL/h, VTBI 50 mL, 10x time -- a motor stall
      (``A?S``) 90 real seconds in.

    The NE-1000 protocol carries rate, VTBI, volume and status only; drug and concentration
    live in the model for the front-ends that can report them.
    """
    bed01 = _ne1000(
        "SIM-NE1000-0001",
        clock=clock,
        acceleration=1.0,
        program=Program(
            rate_ml_h=Decimal("15.4"),
            vtbi_ml=Decimal("250"),
            drug="dopamine",
            concentration=Decimal("1.6"),
            concentration_unit="mg/mL",
        ),
    )
    bed02 = _ne1000(
        "SIM-NE1000-0002",
        clock=clock,
        acceleration=30.0,
        program=Program(rate_ml_h=Decimal("100"), vtbi_ml=Decimal("50"), drug="sodium chloride 0.9%"),
    )
    bed03 = _ne1000(
        "SIM-NE1000-0003",
        clock=clock,
        acceleration=10.0,
        program=Program(
            rate_ml_h=Decimal("8"),
            vtbi_ml=Decimal("50"),
            drug="heparin",
            concentration=Decimal("100"),
            concentration_unit="[iU]/mL",
        ),
    )
    bed03.schedule_alarm(900.0, "motor_stalled")  # model seconds: 90 s real at 10x
    return {"bed01": bed01, "bed02": bed02, "bed03": bed03}
